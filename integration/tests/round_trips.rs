//! One store round trip per remote miss: a cold miss reads the store once and writes it
//! once. The leader of a key's flight used to read the store a second time before
//! computing (GET, GET, SET), which for a remote store doubles a miss's latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use cachemacro_runtime::{memoize, MemoryStore, Store, StoreError, StoreStats};
use cachemacro_test_support::race;

/// How often a store was read and written.
#[derive(Default)]
struct RoundTrips {
    gets: AtomicUsize,
    inserts: AtomicUsize,
}

impl RoundTrips {
    fn counts(&self) -> (usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.inserts.load(Ordering::SeqCst),
        )
    }
}

/// A [`MemoryStore`] that counts its reads and writes, sync and async alike. It has no
/// borrowed lookup, like a remote store, so every call goes through `get`.
struct CountingStore<K, V> {
    inner: MemoryStore<K, V>,
    trips: &'static RoundTrips,
}

impl<K, V> CountingStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(trips: &'static RoundTrips) -> Self {
        CountingStore {
            inner: MemoryStore::new(),
            trips,
        }
    }
}

impl<K, V> Store<K, V> for CountingStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        self.trips.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.trips.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.insert(key, value, ttl)
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        self.inner.remove(key)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear()
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }

    async fn get_async(&self, key: &K) -> Result<Option<V>, StoreError> {
        self.trips.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_async(key).await
    }

    async fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.trips.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_async(key, value, ttl).await
    }
}

static SYNC_TRIPS: RoundTrips = RoundTrips {
    gets: AtomicUsize::new(0),
    inserts: AtomicUsize::new(0),
};

#[memoize(store = CountingStore::new(&SYNC_TRIPS))]
fn title(id: u64) -> String {
    format!("book {id}")
}

#[test]
fn a_cold_sync_miss_reads_once_and_writes_once() {
    assert_eq!(title(312), "book 312");
    assert_eq!(SYNC_TRIPS.counts(), (1, 1));
    assert_eq!(title(312), "book 312");
    assert_eq!(SYNC_TRIPS.counts(), (2, 1), "a hit is one read");
}

static ASYNC_TRIPS: RoundTrips = RoundTrips {
    gets: AtomicUsize::new(0),
    inserts: AtomicUsize::new(0),
};

#[memoize(store = CountingStore::new(&ASYNC_TRIPS))]
async fn page(id: u64) -> String {
    format!("<h1>book {id}</h1>")
}

#[tokio::test]
async fn a_cold_async_miss_reads_once_and_writes_once() {
    assert_eq!(page(312).await, "<h1>book 312</h1>");
    assert_eq!(ASYNC_TRIPS.counts(), (1, 1));
    assert_eq!(page(312).await, "<h1>book 312</h1>");
    assert_eq!(ASYNC_TRIPS.counts(), (2, 1));
}

static CONCURRENT_TRIPS: RoundTrips = RoundTrips {
    gets: AtomicUsize::new(0),
    inserts: AtomicUsize::new(0),
};
static CONCURRENT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(store = CountingStore::new(&CONCURRENT_TRIPS))]
fn slow_square(n: u64) -> u64 {
    CONCURRENT_CALLS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(100));
    n * n
}

#[test]
fn sixteen_threads_on_a_cold_key_compute_and_write_once() {
    for answer in race(16, |_| slow_square(12)) {
        assert_eq!(answer, 144);
    }
    assert_eq!(CONCURRENT_CALLS.load(Ordering::SeqCst), 1);
    let (gets, inserts) = CONCURRENT_TRIPS.counts();
    assert_eq!(inserts, 1);
    // Each caller reads once; only one that joined after the leader finished reads again.
    assert!((16..=32).contains(&gets), "{gets} reads");
    let stats = slow_square::stats();
    assert_eq!((stats.misses, stats.hits), (1, 15));
}

#[cfg(feature = "axum")]
mod pages {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::response::Response;
    use cachemacro_runtime::{CachedPage, PageCache, PageKey};
    use std::convert::Infallible;

    static PAGE_TRIPS: RoundTrips = RoundTrips {
        gets: AtomicUsize::new(0),
        inserts: AtomicUsize::new(0),
    };

    #[tokio::test]
    async fn a_cold_page_reads_once_and_writes_once() {
        let store: CountingStore<PageKey, CachedPage> = CountingStore::new(&PAGE_TRIPS);
        let cache = PageCache::with_store(store);
        let render =
            |_: Request<()>| async { Ok::<_, Infallible>(Response::new(Body::from("book 312"))) };
        let first = cache
            .serve(Request::get("/books/312").body(()).unwrap(), render)
            .await
            .unwrap();
        assert_eq!(first.headers()["x-cache"], "MISS");
        assert_eq!(PAGE_TRIPS.counts(), (1, 1));
        let again = cache
            .serve(Request::get("/books/312").body(()).unwrap(), render)
            .await
            .unwrap();
        assert_eq!(again.headers()["x-cache"], "HIT");
        assert_eq!(PAGE_TRIPS.counts(), (2, 1));
    }
}
