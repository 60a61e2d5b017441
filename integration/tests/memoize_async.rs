//! Behaviour of `#[memoize]` on `async fn`: single-flight across tasks, cancellation,
//! `Send` futures and store faults.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachemacro_runtime::{memoize, Store, StoreError};
use tokio::sync::Barrier;

static FETCH_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "30s")]
async fn fetch_page(id: u64) -> String {
    FETCH_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("<h1>book {id}</h1>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_on_one_cold_key_compute_once() {
    let barrier = Arc::new(Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                fetch_page(312).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "<h1>book 312</h1>");
    }
    assert_eq!(FETCH_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(fetch_page::stats().misses, 1);
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[memoize]
async fn greeting(name: String) -> String {
    format!("hello {name}")
}

#[tokio::test]
async fn the_memoized_future_is_send() {
    let future = assert_send(greeting("ada".to_owned()));
    assert_eq!(tokio::spawn(future).await.unwrap(), "hello ada");
}

static CANCELLED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn cancellable(n: u32) -> u32 {
    let call = CANCELLED_CALLS.fetch_add(1, Ordering::SeqCst);
    if call == 0 {
        // The first caller is cancelled long before this finishes.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    n * 2
}

#[tokio::test]
async fn a_cancelled_leader_does_not_leave_the_key_stuck() {
    let cancelled = tokio::time::timeout(Duration::from_millis(50), cancellable(21)).await;
    assert!(cancelled.is_err());
    let next = tokio::time::timeout(Duration::from_secs(5), cancellable(21)).await;
    assert_eq!(next, Ok(42));
    assert_eq!(CANCELLED_CALLS.load(Ordering::SeqCst), 2);
}

static WAITING_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn slow_then_fast(n: u32) -> u32 {
    let call = WAITING_CALLS.fetch_add(1, Ordering::SeqCst);
    if call == 0 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    n + 1
}

#[tokio::test]
async fn followers_of_a_cancelled_leader_take_over() {
    let leader = tokio::spawn(slow_then_fast(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let follower = tokio::spawn(slow_then_fast(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let value = tokio::time::timeout(Duration::from_secs(5), follower).await;
    assert_eq!(value.unwrap().unwrap(), 2);
    assert_eq!(WAITING_CALLS.load(Ordering::SeqCst), 2);
}

#[derive(Debug, PartialEq)]
struct DbError;

struct Db;

static BOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "30s", ignore(db))]
async fn book(db: &Db, id: u64) -> Result<String, DbError> {
    let _ = db;
    BOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        return Err(DbError);
    }
    let title = load_title(id).await?;
    Ok(title)
}

async fn load_title(id: u64) -> Result<String, DbError> {
    Ok(format!("title {id}"))
}

#[tokio::test]
async fn async_results_keep_err_out_of_the_cache() {
    assert_eq!(book(&Db, 0).await, Err(DbError));
    assert_eq!(book(&Db, 0).await, Err(DbError));
    assert_eq!(book(&Db, 5).await, Ok("title 5".to_owned()));
    assert_eq!(book(&Db, 5).await, Ok("title 5".to_owned()));
    assert_eq!(BOOK_CALLS.load(Ordering::SeqCst), 3);
}

/// A backend that is always down.
struct DownStore;

impl Store<(u32,), u32> for DownStore {
    fn get(&self, _: &(u32,)) -> Result<Option<u32>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    fn insert(&self, _: (u32,), _: u32, _: Option<Duration>) -> Result<(), StoreError> {
        Err(StoreError::Timeout(Duration::from_millis(100)))
    }
    fn remove(&self, _: &(u32,)) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    fn clear(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

static DOWN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(store = DownStore)]
async fn through_a_dead_store(n: u32) -> u32 {
    DOWN_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 3
}

#[tokio::test]
async fn a_store_fault_never_fails_the_function() {
    assert_eq!(through_a_dead_store(2).await, 6);
    assert_eq!(through_a_dead_store(2).await, 6);
    assert_eq!(DOWN_CALLS.load(Ordering::SeqCst), 2);
    assert!(!through_a_dead_store::invalidate(2));
    through_a_dead_store::clear();
    let stats = through_a_dead_store::stats();
    // Per call: get, leader re-check, insert; then invalidate and clear.
    assert_eq!(stats.errors, 2 * 3 + 2);
    assert_eq!((stats.hits, stats.misses), (0, 2));
}
