//! A Redis outage costs callers the computation, not a timeout each: after the first
//! failure the server is skipped for `retry_after`, and one caller per window probes it.
//! Counted at the store (`server_calls`), not timed.

#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, RedisStore};
use cachemacro_test_support::{race, RedisServer};

const RETRY_AFTER: Duration = Duration::from_millis(500);
const OUTAGE: Duration = Duration::from_secs(2);
/// Callers racing through the outage.
const CALLERS: usize = 4;

/// One store per test; the memoized function gets a clone, which shares its fail-fast state.
fn store(slot: &OnceLock<RedisStore>, server: &RedisServer) -> RedisStore {
    slot.get_or_init(|| {
        RedisStore::builder(server.url())
            .prefix("outage")
            .retry_after(RETRY_AFTER)
            .build()
            .expect("valid URL")
    })
    .clone()
}

/// Calls that may reach a dead server: the ones in flight when it died, then one probe
/// per `retry_after` window (plus one for a window cut by the clock).
fn allowed_attempts() -> u64 {
    CALLERS as u64 + (OUTAGE.as_millis() / RETRY_AFTER.as_millis()) as u64 + 1
}

/// `CALLERS` threads calling `memoized` on new keys for `OUTAGE`, each call checked
/// against `expected`; the number of calls made.
fn race_through_outage(memoized: fn(u64) -> u64, expected: fn(u64) -> u64) -> usize {
    race(CALLERS, |thread| {
        let (started, mut calls) = (Instant::now(), 0);
        let mut n = 1_000 * thread as u64;
        while started.elapsed() < OUTAGE {
            n += 1;
            assert_eq!(memoized(n), expected(n), "every call gets its value");
            calls += 1;
        }
        calls
    })
    .into_iter()
    .sum()
}

static SYNC_STORE: OnceLock<RedisStore> = OnceLock::new();
static SYNC_COMPUTED: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "outage_sync", store = SYNC_STORE.get().expect("set by the test").clone())]
fn doubled(n: u64) -> u64 {
    SYNC_COMPUTED.fetch_add(1, Ordering::Relaxed);
    n * 2
}

#[test]
fn sync_callers_skip_a_dead_server_and_one_probes_per_window() {
    let mut server = RedisServer::start();
    let store = store(&SYNC_STORE, &server);
    assert_eq!(doubled(1), 2);
    assert_eq!(doubled(1), 2);
    assert_eq!(
        SYNC_COMPUTED.load(Ordering::Relaxed),
        1,
        "the second call was a hit"
    );

    server.kill();
    let before = store.server_calls()[0];
    let calls = race_through_outage(doubled, |n| n * 2);
    let reached = store.server_calls()[0] - before;
    assert!(
        calls > 100,
        "only {calls} calls in {OUTAGE:?}: callers waited"
    );
    assert!(
        reached <= allowed_attempts(),
        "{reached} of {calls} calls reached the dead server"
    );

    server.restart();
    thread::sleep(RETRY_AFTER + Duration::from_millis(100));
    doubled(7); // the probe: stored again
    let computed = SYNC_COMPUTED.load(Ordering::Relaxed);
    assert_eq!(doubled(7), 14);
    assert_eq!(
        SYNC_COMPUTED.load(Ordering::Relaxed),
        computed,
        "hits resume"
    );
}

static ASYNC_STORE: OnceLock<RedisStore> = OnceLock::new();

#[memoize(name = "outage_async", store = ASYNC_STORE.get().expect("set by the test").clone())]
async fn tripled(n: u64) -> u64 {
    n * 3
}

#[test]
fn async_callers_skip_a_dead_server_and_one_probes_per_window() {
    let mut server = RedisServer::start();
    let store = store(&ASYNC_STORE, &server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(tripled(1).await, 3);
        server.kill();
        let before = store.server_calls()[0];
        let stop = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
        let tasks: Vec<_> = (0..CALLERS as u64)
            .map(|task| {
                let (stop, barrier) = (Arc::clone(&stop), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let (mut n, mut calls) = (1_000 * task, 0usize);
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        assert_eq!(tripled(n).await, n * 3);
                        calls += 1;
                        tokio::task::yield_now().await;
                    }
                    calls
                })
            })
            .collect();
        tokio::time::sleep(OUTAGE).await;
        stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        for task in tasks {
            calls += task.await.unwrap();
        }
        let reached = store.server_calls()[0] - before;
        assert!(
            calls > 100,
            "only {calls} calls in {OUTAGE:?}: tasks waited"
        );
        assert!(
            reached <= allowed_attempts(),
            "{reached} of {calls} calls reached the dead server"
        );
    });
}

static STALLED_STORE: OnceLock<RedisStore> = OnceLock::new();

#[memoize(name = "outage_stalled", store = STALLED_STORE.get().expect("set by the test").clone())]
fn squared(n: u64) -> u64 {
    n * n
}

#[test]
fn a_stalled_server_costs_one_timeout_per_window_not_one_per_call() {
    let mut server = RedisServer::start();
    let store = store(&STALLED_STORE, &server);
    assert_eq!(squared(3), 9);
    // A server that accepts connections but never answers, as a stalled or overloaded
    // one does: every call that reaches it waits out the operation timeout.
    server.pause();
    let before = store.server_calls()[0];
    let calls = race_through_outage(squared, |n| n * n);
    let reached = store.server_calls()[0] - before;
    server.resume();
    // Had every call waited out the 100 ms operation timeout, 4 callers would have made
    // at most 80 calls in 2 s.
    assert!(
        calls > 1_000,
        "only {calls} calls in {OUTAGE:?}: callers waited"
    );
    assert!(
        reached <= allowed_attempts(),
        "{reached} of {calls} calls reached the stalled server"
    );
}
