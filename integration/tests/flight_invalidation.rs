//! An invalidation wins over a computation in flight: a memoized body that read the data
//! before it changed returns its value to its own caller, but the value is not stored,
//! so the call after the invalidation computes from the new data.
//!
//! Barriers pin the order: the body has read the data, then the data changes and the
//! key is invalidated, then the body finishes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, LazyLock};
use std::thread;

use cachemacro_runtime::memoize;

/// The data behind one memoized function, and the two points its first run stops at.
struct Shelf {
    price: AtomicU64,
    /// The next run stops after reading the data, until the test has changed it.
    gated: AtomicBool,
    read: Barrier,
    changed: Barrier,
}

impl Shelf {
    fn new() -> Self {
        Shelf {
            price: AtomicU64::new(1000),
            gated: AtomicBool::new(false),
            read: Barrier::new(2),
            changed: Barrier::new(2),
        }
    }

    /// What the body computes: the current data, read before the body waits.
    fn read(&self, id: u64) -> u64 {
        let value = self.price.load(Ordering::SeqCst) + id;
        if self.gated.swap(false, Ordering::SeqCst) {
            self.read.wait();
            self.changed.wait();
        }
        value
    }
}

static BOOK: LazyLock<Shelf> = LazyLock::new(Shelf::new);

#[memoize]
fn book(id: u64) -> u64 {
    BOOK.read(id)
}

#[test]
fn an_invalidation_during_a_sync_computation_is_not_undone_by_it() {
    BOOK.gated.store(true, Ordering::SeqCst);
    let first = thread::spawn(|| book(312));
    BOOK.read.wait();
    BOOK.price.store(2000, Ordering::SeqCst);
    assert!(!book::invalidate(312), "nothing stored yet");
    BOOK.changed.wait();
    assert_eq!(
        first.join().unwrap(),
        1312,
        "its caller gets what it computed"
    );
    assert_eq!(book(312), 2312, "the old value was not stored");
    assert_eq!(book(312), 2312);
    let stats = book::stats();
    assert_eq!((stats.misses, stats.hits, stats.inserts), (2, 1, 1));
}

static CATALOGUE: LazyLock<Shelf> = LazyLock::new(Shelf::new);

#[memoize]
fn catalogue(id: u64) -> u64 {
    CATALOGUE.read(id)
}

#[test]
fn a_clear_during_a_sync_computation_is_not_undone_by_it() {
    assert_eq!(catalogue(1), 1001);
    CATALOGUE.gated.store(true, Ordering::SeqCst);
    let first = thread::spawn(|| catalogue(312));
    CATALOGUE.read.wait();
    CATALOGUE.price.store(2000, Ordering::SeqCst);
    catalogue::clear();
    CATALOGUE.changed.wait();
    assert_eq!(first.join().unwrap(), 1312);
    assert_eq!(catalogue(312), 2312);
    assert_eq!(
        catalogue(1),
        2001,
        "the clear removed the entries stored before"
    );
}

/// The async form of [`Shelf`]: the body awaits the barriers.
struct AsyncShelf {
    price: AtomicU64,
    gated: AtomicBool,
    read: tokio::sync::Barrier,
    changed: tokio::sync::Barrier,
}

impl AsyncShelf {
    fn new() -> Self {
        AsyncShelf {
            price: AtomicU64::new(1000),
            gated: AtomicBool::new(false),
            read: tokio::sync::Barrier::new(2),
            changed: tokio::sync::Barrier::new(2),
        }
    }

    async fn read(&self, id: u64) -> u64 {
        let value = self.price.load(Ordering::SeqCst) + id;
        if self.gated.swap(false, Ordering::SeqCst) {
            self.read.wait().await;
            self.changed.wait().await;
        }
        value
    }
}

static PAGE: LazyLock<AsyncShelf> = LazyLock::new(AsyncShelf::new);

#[memoize]
async fn page(id: u64) -> u64 {
    PAGE.read(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_an_async_computation_is_not_undone_by_it() {
    PAGE.gated.store(true, Ordering::SeqCst);
    let first = tokio::spawn(page(312));
    PAGE.read.wait().await;
    PAGE.price.store(2000, Ordering::SeqCst);
    page::invalidate(312);
    PAGE.changed.wait().await;
    assert_eq!(first.await.unwrap(), 1312);
    assert_eq!(page(312).await, 2312);
    assert_eq!(page(312).await, 2312);
    assert_eq!(page::stats().misses, 2);
}

static LISTING: LazyLock<AsyncShelf> = LazyLock::new(AsyncShelf::new);

#[memoize]
async fn listing(id: u64) -> u64 {
    LISTING.read(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_during_an_async_computation_is_not_undone_by_it() {
    LISTING.gated.store(true, Ordering::SeqCst);
    let first = tokio::spawn(listing(312));
    LISTING.read.wait().await;
    LISTING.price.store(2000, Ordering::SeqCst);
    listing::clear();
    LISTING.changed.wait().await;
    assert_eq!(first.await.unwrap(), 1312);
    assert_eq!(listing(312).await, 2312);
}

static AUTHOR: LazyLock<Shelf> = LazyLock::new(Shelf::new);

#[memoize]
fn author(id: u64) -> u64 {
    AUTHOR.read(id)
}

#[test]
fn invalidating_another_key_leaves_the_computation_stored() {
    AUTHOR.gated.store(true, Ordering::SeqCst);
    let first = thread::spawn(|| author(312));
    AUTHOR.read.wait();
    author::invalidate(313);
    AUTHOR.changed.wait();
    assert_eq!(first.join().unwrap(), 1312);
    AUTHOR.price.store(2000, Ordering::SeqCst);
    assert_eq!(author(312), 1312, "stored: no invalidation of its key ran");
    assert_eq!(author::stats().misses, 1);
}

/// Many threads that invalidate while many others compute: whatever the interleaving,
/// once the data has settled and been invalidated, no call returns an old value.
#[memoize]
fn stock(id: u64) -> u64 {
    STOCK.load(Ordering::SeqCst) + id
}

static STOCK: AtomicU64 = AtomicU64::new(0);

#[test]
fn concurrent_invalidations_never_leave_an_old_value_stored() {
    for round in 1..=50u64 {
        let start = Arc::new(Barrier::new(8));
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    if worker % 2 == 0 {
                        STOCK.store(round * 1000, Ordering::SeqCst);
                        stock::invalidate(7);
                    } else {
                        stock(7);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(stock(7), round * 1000 + 7, "round {round}");
    }
}
