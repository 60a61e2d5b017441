//! [`CacheApi`] for the in-memory store.
//!
//! Conditional writes (`add`, `incr`, `cas`) are check-then-act sequences; they are made
//! atomic by a mutex chosen by the key's hash from a small shared table, so two calls on
//! one key serialize while calls on other keys do not wait. They are atomic with respect
//! to each other, which is what counters and compare-and-set loops need; a plain
//! [`Store::insert`] does not take the lock and simply wins or loses like any write.
//! `touch` needs no such lock: it changes the entry's expiry in place, under its shard's
//! lock.
//!
//! A counter's next value and a new expiry update the entry in place: nothing leaves the
//! store, so the removal listener hears nothing of `incr` or `touch`.

use std::any::Any;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::sharded::{MemoryStore, Overwrite};
use crate::store::api::{CacheApi, CasToken, CasTokenRepr};
use crate::store::{Store, StoreError};

const KEY_LOCKS: usize = 64;

static KEY_LOCKS_TABLE: [Mutex<()>; KEY_LOCKS] = [const { Mutex::new(()) }; KEY_LOCKS];

/// The lock of `key` in `store`: the same key of the same store always maps to one lock.
fn key_lock<K: Hash, V>(store: &MemoryStore<K, V>, key: &K) -> MutexGuard<'static, ()> {
    let mut hasher = DefaultHasher::new();
    (store as *const MemoryStore<K, V> as usize).hash(&mut hasher);
    key.hash(&mut hasher);
    let index = (hasher.finish() % KEY_LOCKS as u64) as usize;
    // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
    KEY_LOCKS_TABLE[index]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// `value` as an `i64`, when `V` is one of the integer types counters can live in.
fn as_counter<V: Any>(value: &V) -> Option<i64> {
    let value = value as &dyn Any;
    if let Some(n) = value.downcast_ref::<i64>() {
        return Some(*n);
    }
    if let Some(n) = value.downcast_ref::<u64>() {
        return i64::try_from(*n).ok();
    }
    if let Some(n) = value.downcast_ref::<i32>() {
        return Some(i64::from(*n));
    }
    value.downcast_ref::<u32>().map(|n| i64::from(*n))
}

/// `n` as a `V`, the inverse of [`as_counter`].
fn from_counter<V: Any>(n: i64) -> Option<V> {
    let boxed: Box<dyn Any> = if (&0i64 as &dyn Any).is::<V>() {
        Box::new(n)
    } else if (&0u64 as &dyn Any).is::<V>() {
        Box::new(u64::try_from(n).ok()?)
    } else if (&0i32 as &dyn Any).is::<V>() {
        Box::new(i32::try_from(n).ok()?)
    } else if (&0u32 as &dyn Any).is::<V>() {
        Box::new(u32::try_from(n).ok()?)
    } else {
        return None;
    };
    boxed.downcast::<V>().ok().map(|value| *value)
}

/// The counting step of `incr` and `incr_existing`, under the key's lock.
impl<K, V> MemoryStore<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + PartialEq + Send + Sync + 'static,
{
    fn count_locked(&self, key: &K, current: Option<V>, delta: i64) -> Result<i64, StoreError> {
        let current = match current {
            Some(value) => as_counter(&value).ok_or_else(|| {
                StoreError::Other("incr needs an integer value type (i64, u64, i32 or u32)".into())
            })?,
            None => 0,
        };
        let counted = current.checked_add(delta).ok_or(StoreError::Overflow)?;
        let value = from_counter(counted).ok_or_else(|| {
            StoreError::Other(format!("counter value {counted} does not fit the value type").into())
        })?;
        self.write(key.clone(), value, None, Overwrite::Updates)?;
        Ok(counted)
    }
}

impl<K, V> CacheApi<K, V> for MemoryStore<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + PartialEq + Send + Sync + 'static,
{
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let _locked = key_lock(self, &key);
        if self.get(&key)?.is_some() {
            return Ok(false);
        }
        self.insert(key, value, ttl)?;
        Ok(true)
    }

    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError> {
        // `None` means "never expires" here, unlike `insert`, where it means the
        // store's default.
        Ok(self.set_ttl(key, ttl.unwrap_or(Duration::MAX)))
    }

    /// Counters live in values of type `i64`, `u64`, `i32` or `u32`; another value type
    /// is an error.
    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        let _locked = key_lock(self, key);
        let current = self.get(key)?;
        self.count_locked(key, current, delta)
    }

    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError> {
        let _locked = key_lock(self, key);
        match self.get(key)? {
            Some(current) => self.count_locked(key, Some(current), delta).map(Some),
            None => Ok(None),
        }
    }

    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError> {
        Ok(self.get(key)?.map(|value| {
            let seen: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
            (value, CasToken(CasTokenRepr::Value(seen)))
        }))
    }

    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let _locked = key_lock(self, &key);
        let current = self.get(&key)?;
        let unchanged = match (&token.0, &current) {
            (CasTokenRepr::Bytes(bytes), None) => bytes.is_empty(),
            (CasTokenRepr::Value(seen), Some(current)) => seen.downcast_ref::<V>() == Some(current),
            (CasTokenRepr::Version(_), _) => return Err(CasToken::foreign()),
            _ => false,
        };
        if unchanged {
            self.insert(key, value, ttl)?;
        }
        Ok(unchanged)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::thread;

    use super::*;

    #[test]
    fn the_hit_counter_is_exact_with_incr_and_with_cas() {
        let store: MemoryStore<&str, i64> = MemoryStore::new();
        let barrier = Barrier::new(8);
        thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    barrier.wait();
                    for _ in 0..10_000 {
                        store.incr(&"incr", 1).unwrap();
                        loop {
                            let (seen, token) = store
                                .gets(&"cas")
                                .unwrap()
                                .unwrap_or((0, store.absent_token()));
                            if store.cas("cas", seen + 1, &token, None).unwrap() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(store.get(&"incr").unwrap(), Some(80_000));
        assert_eq!(store.get(&"cas").unwrap(), Some(80_000));
    }

    #[test]
    fn conditional_writes() {
        let store: MemoryStore<u32, u32> = MemoryStore::new();
        assert!(store.add(1, 10, None).unwrap());
        assert!(!store.add(1, 11, None).unwrap());
        assert_eq!(store.get_or_set(1, || 99, None).unwrap(), 10);
        assert_eq!(store.get_or_set(2, || 99, None).unwrap(), 99);
        assert_eq!(store.incr(&3, 5).unwrap(), 5);
        assert_eq!(store.decr(&3, 2).unwrap(), 3);
        assert!(store.decr(&3, 4).is_err(), "u32 cannot hold -1");
        assert!(store.touch(&1, Some(Duration::from_secs(5))).unwrap());
        assert!(!store.touch(&9, None).unwrap());
        assert!(store.touch(&2, None).unwrap());
        assert_eq!(store.get(&2).unwrap(), Some(99));
        assert_eq!(
            store.get_many(&[1, 9, 2]).unwrap(),
            vec![Some(10), None, Some(99)]
        );
        store.set_many(vec![(5, 50), (6, 60)], None).unwrap();
        assert_eq!(store.delete_many(&[5, 6, 7]).unwrap(), 2);
        let (_, token) = store.gets(&1).unwrap().unwrap();
        store.insert(1, 12, None).unwrap();
        assert!(
            !store.cas(1, 13, &token, None).unwrap(),
            "the value changed since gets"
        );
    }

    #[test]
    fn incr_on_a_non_integer_store_is_an_error_not_a_panic() {
        let store: MemoryStore<u8, String> = MemoryStore::new();
        assert!(store.incr(&1, 1).is_err());
        store.insert(2, "x".to_owned(), None).unwrap();
        assert!(store.incr(&2, 1).is_err());
    }

    /// `incr` and `touch` used to rewrite the entry through `insert`, which reported the
    /// counter's or the entry's own previous state as [`RemovalCause::Replaced`].
    mod incr_and_touch_are_not_removals {
        use std::sync::{Arc, Mutex};
        use std::thread;
        use std::time::Duration;

        use crate::store::api::CacheApi;
        use crate::store::memory::removal::RemovalCause;
        use crate::store::memory::sharded::MemoryStore;
        use crate::store::Store;

        type Events = Arc<Mutex<Vec<(&'static str, i64, RemovalCause)>>>;

        fn heard(events: &Events) -> Vec<(&'static str, i64, RemovalCause)> {
            events.lock().unwrap().clone()
        }

        fn listened() -> (MemoryStore<&'static str, i64>, Events) {
            let events = Events::default();
            let listener = Arc::clone(&events);
            let store = MemoryStore::builder()
                .capacity(1_000)
                .on_removal(move |key: &&'static str, value: &i64, cause| {
                    listener.lock().unwrap().push((*key, *value, cause));
                })
                .build();
            (store, events)
        }

        #[test]
        fn incr_and_touch_fire_nothing_and_a_real_replacement_fires_once() {
            let (store, events) = listened();
            for _ in 0..10 {
                store.incr(&"hits", 1).unwrap();
            }
            assert!(store
                .touch(&"hits", Some(Duration::from_secs(600)))
                .unwrap());
            assert_eq!(heard(&events), []);
            assert_eq!(store.get(&"hits").unwrap(), Some(10));
            assert_eq!(store.len(), 1);

            store.insert("hits", 0, None).unwrap();
            assert_eq!(heard(&events), [("hits", 10, RemovalCause::Replaced)]);
        }

        #[test]
        fn incr_existing_and_decr_fire_nothing() {
            let (store, events) = listened();
            store.insert("stock", 5, None).unwrap();
            assert_eq!(store.incr_existing(&"stock", 2).unwrap(), Some(7));
            assert_eq!(store.decr(&"stock", 3).unwrap(), 4);
            assert_eq!(heard(&events), []);
        }

        #[test]
        fn touch_sets_the_time_to_live_in_place() {
            let (store, events) = listened();
            store
                .insert("short", 1, Some(Duration::from_secs(600)))
                .unwrap();
            store
                .insert("kept", 2, Some(Duration::from_millis(30)))
                .unwrap();
            assert!(store
                .touch(&"short", Some(Duration::from_millis(30)))
                .unwrap());
            assert!(store.touch(&"kept", None).unwrap());
            thread::sleep(Duration::from_millis(150));
            assert_eq!(store.get(&"short").unwrap(), None);
            assert_eq!(store.get(&"kept").unwrap(), Some(2));
            // An expired entry is not brought back.
            assert!(!store.touch(&"short", None).unwrap());
            assert_eq!(store.get(&"short").unwrap(), None);
            assert_eq!(heard(&events), []);
        }
    }
}
