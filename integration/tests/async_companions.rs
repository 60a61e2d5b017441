//! The async companions (`invalidate_async`, `clear_async`) of `#[memoize]` and
//! `#[cache_page]`: they remove what the sync ones remove, and they reach the store
//! through its async removal, never the blocking one.
#![deny(warnings, unused_qualifications)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{
    cache_page, memoize, CachedPage, KeyRef, MemoryStore, PageKey, Store, StoreError, StoreStats,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// How often a store was emptied through each of its two paths.
struct RemovalLog {
    sync_removals: AtomicUsize,
    async_removals: AtomicUsize,
    sync_clears: AtomicUsize,
    async_clears: AtomicUsize,
}

impl RemovalLog {
    const fn new() -> RemovalLog {
        RemovalLog {
            sync_removals: AtomicUsize::new(0),
            async_removals: AtomicUsize::new(0),
            sync_clears: AtomicUsize::new(0),
            async_clears: AtomicUsize::new(0),
        }
    }

    /// (sync removals, async removals, sync clears, async clears).
    fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.sync_removals.load(Ordering::SeqCst),
            self.async_removals.load(Ordering::SeqCst),
            self.sync_clears.load(Ordering::SeqCst),
            self.async_clears.load(Ordering::SeqCst),
        )
    }
}

/// A memory store that records which path each removal and clear took, standing in for a
/// remote store whose blocking path would stall the executor.
struct LoggedStore<K, V> {
    inner: MemoryStore<K, V>,
    log: &'static RemovalLog,
}

impl<K, V> LoggedStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(log: &'static RemovalLog) -> Self {
        LoggedStore {
            inner: MemoryStore::new(),
            log,
        }
    }
}

impl<K, V> Store<K, V> for LoggedStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        self.inner.get(key)
    }

    fn get_borrowed<Q>(&self, key: &Q) -> Option<V>
    where
        Q: KeyRef<Key = K> + ?Sized,
    {
        self.inner.get_borrowed(key)
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.inner.insert(key, value, ttl)
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        self.log.sync_removals.fetch_add(1, Ordering::SeqCst);
        self.inner.remove(key)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.log.sync_clears.fetch_add(1, Ordering::SeqCst);
        self.inner.clear()
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }

    async fn remove_async(&self, key: &K) -> Result<bool, StoreError> {
        self.log.async_removals.fetch_add(1, Ordering::SeqCst);
        // A remote store answers later: the caller must really be suspended here.
        tokio::task::yield_now().await;
        self.inner.remove(key)
    }

    async fn clear_async(&self) -> Result<(), StoreError> {
        self.log.async_clears.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.inner.clear()
    }
}

static PRICE_LOG: RemovalLog = RemovalLog::new();
static PRICE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(store = LoggedStore::new(&PRICE_LOG))]
async fn price(sku: &str, quantity: u32) -> u64 {
    PRICE_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    sku.len() as u64 * u64::from(quantity)
}

#[tokio::test]
async fn a_memoized_fn_computes_again_after_its_async_companions() {
    assert_eq!(price("book", 2).await, 8);
    assert_eq!(price("book", 2).await, 8);
    assert_eq!(PRICE_CALLS.load(Ordering::SeqCst), 1);

    assert!(price::invalidate_async("book", 2).await);
    assert!(!price::invalidate_async("book", 2).await);
    assert_eq!(price("book", 2).await, 8);
    assert_eq!(PRICE_CALLS.load(Ordering::SeqCst), 2);

    assert_eq!(price("pen", 1).await, 3);
    assert_eq!(PRICE_CALLS.load(Ordering::SeqCst), 3);
    price::clear_async().await;
    assert_eq!(price("book", 2).await, 8);
    assert_eq!(price("pen", 1).await, 3);
    assert_eq!(PRICE_CALLS.load(Ordering::SeqCst), 5);

    // Two async removals, one async clear, and the blocking path never taken.
    assert_eq!(PRICE_LOG.counts(), (0, 2, 0, 1));
}

static SHELF_LOG: RemovalLog = RemovalLog::new();
static SHELF_RENDERS: AtomicUsize = AtomicUsize::new(0);

#[cache_page(store = LoggedStore::<PageKey, CachedPage>::new(&SHELF_LOG))]
async fn shelf() -> String {
    let render = SHELF_RENDERS.fetch_add(1, Ordering::SeqCst) + 1;
    format!("shelf, render {render}")
}

async fn send(app: &Router, uri: &str) -> (StatusCode, String, String) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let x_cache = response
        .headers()
        .get("x-cache")
        .map_or(String::new(), |value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, x_cache, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_page_renders_again_after_its_async_companions() {
    let app = Router::new().route("/shelf", get(shelf));
    let miss = (
        StatusCode::OK,
        "MISS".to_owned(),
        "shelf, render 1".to_owned(),
    );
    assert_eq!(send(&app, "/shelf").await, miss);
    assert_eq!(send(&app, "/shelf").await.1, "HIT");

    assert!(shelf::invalidate_async("/shelf").await);
    assert!(!shelf::invalidate_async("/shelf").await);
    assert_eq!(
        send(&app, "/shelf").await,
        (
            StatusCode::OK,
            "MISS".to_owned(),
            "shelf, render 2".to_owned()
        )
    );
    assert_eq!(send(&app, "/shelf").await.1, "HIT");

    shelf::clear_async().await;
    assert_eq!(
        send(&app, "/shelf").await,
        (
            StatusCode::OK,
            "MISS".to_owned(),
            "shelf, render 3".to_owned()
        )
    );
    assert_eq!(SHELF_RENDERS.load(Ordering::SeqCst), 3);

    // Two async invalidations, each removing the page under both schemes; nothing
    // took the blocking path.
    assert_eq!(SHELF_LOG.counts(), (0, 4, 0, 1));
}
