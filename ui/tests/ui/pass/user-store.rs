use cachemacro_runtime::{memoize, Store, StoreError};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static INSERTS: AtomicUsize = AtomicUsize::new(0);

/// A mutex around a map, counting inserts and remembering the ttl it was given.
struct MapStore<K, V> {
    entries: Mutex<HashMap<K, V>>,
    last_ttl: Mutex<Option<Duration>>,
}

impl<K, V> MapStore<K, V> {
    fn new() -> Self {
        MapStore {
            entries: Mutex::new(HashMap::new()),
            last_ttl: Mutex::new(None),
        }
    }
}

impl<K, V> Store<K, V> for MapStore<K, V>
where
    K: Hash + Eq + Send,
    V: Clone + Send,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        Ok(self.entries.lock().unwrap().get(key).cloned())
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        INSERTS.fetch_add(1, Ordering::SeqCst);
        *self.last_ttl.lock().unwrap() = ttl;
        self.entries.lock().unwrap().insert(key, value);
        Ok(())
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        Ok(self.entries.lock().unwrap().remove(key).is_some())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.entries.lock().unwrap().clear();
        Ok(())
    }
}

/// Always fails: the memoized function must still return its value.
struct BrokenStore;

impl<K: Send, V: Send> Store<K, V> for BrokenStore {
    fn get(&self, _: &K) -> Result<Option<V>, StoreError> {
        Err(StoreError::Unavailable("down".to_owned()))
    }

    fn insert(&self, _: K, _: V, _: Option<Duration>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".to_owned()))
    }

    fn remove(&self, _: &K) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("down".to_owned()))
    }

    fn clear(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".to_owned()))
    }
}

#[memoize(store = MapStore::new(), ttl = "2m")]
fn square(n: u64) -> u64 {
    n * n
}

#[memoize(store = BrokenStore)]
fn cube(n: u64) -> u64 {
    n * n * n
}

fn main() {
    assert_eq!(square(12), 144);
    assert_eq!(square(12), 144);
    assert_eq!(INSERTS.load(Ordering::SeqCst), 1);
    assert_eq!(square::stats().hits, 1);
    assert!(square::invalidate(12));

    assert_eq!(cube(2), 8);
    assert_eq!(cube(2), 8);
    assert_eq!(cube::stats().hits, 0);
    assert!(cube::stats().errors >= 2);
}
