//! One of three memcached servers dies while four threads keep calling a memoized
//! function: callers get their values at once (computed for the dead server's keys,
//! hits for the others'), and the dead server is probed once per `retry_after`, not on
//! every call.

#![cfg(feature = "memcached")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, MemcachedStore};
use cachemacro_test_support::MemcachedServer;

const THREADS: usize = 4;
/// Keys of each thread; no two threads share one, so that no call joins another's
/// computation and every miss is a computation of its own.
const KEYS_PER_THREAD: usize = 12;
const KEYS: usize = THREADS * KEYS_PER_THREAD;
const RETRY_AFTER: Duration = Duration::from_millis(500);
const RUN_FOR: Duration = Duration::from_secs(2);

static STORE: OnceLock<MemcachedStore> = OnceLock::new();
static COMPUTED: [AtomicU64; KEYS] = [const { AtomicU64::new(0) }; KEYS];

fn shared_store() -> MemcachedStore {
    STORE.get().expect("the store is built first").clone()
}

#[memoize(name = "prices", store = shared_store())]
fn price(id: u32) -> u64 {
    COMPUTED[id as usize].fetch_add(1, Ordering::SeqCst);
    u64::from(id) * 3
}

#[test]
fn a_dead_server_is_probed_once_per_retry_after_while_the_others_serve_hits() {
    let mut servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start()).collect();
    let store = MemcachedStore::builder(servers.iter().map(MemcachedServer::address))
        .prefix("outage")
        .namespace("prices")
        .retry_after(RETRY_AFTER)
        // Generous, so that a loaded machine never turns a live server's answer into
        // a timeout: the dead server refuses connections at once anyway.
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    STORE.set(store.clone()).unwrap();

    const DEAD: usize = 0;
    let dead_address = servers[DEAD].address();
    servers[DEAD].kill();
    let on_dead: Vec<bool> = (0..KEYS as u32)
        .map(|id| store.server_for(&(id,)) == Some(dead_address.as_str()))
        .collect();
    assert!(on_dead.iter().any(|dead| *dead) && on_dead.iter().any(|dead| !*dead));

    // The first call to the dead server finds it dead and marks it down; from here on
    // it may only be probed.
    let first_dead = on_dead.iter().position(|dead| *dead).unwrap() as u32;
    assert_eq!(price(first_dead), u64::from(first_dead) * 3);
    let reached_before = store.server_calls()[DEAD];
    assert_eq!(reached_before, 1);

    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut calls = [0u64; KEYS];
                barrier.wait();
                let started = Instant::now();
                let mut n = 0;
                while started.elapsed() < RUN_FOR {
                    let id = (thread * KEYS_PER_THREAD + n % KEYS_PER_THREAD) as u32;
                    assert_eq!(price(id), u64::from(id) * 3, "call {n} of thread {thread}");
                    calls[id as usize] += 1;
                    n += 1;
                }
                calls
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut calls = [0u64; KEYS];
    for worker in workers {
        for (total, counted) in calls.iter_mut().zip(worker.join().unwrap()) {
            *total += counted;
        }
    }
    let elapsed = started.elapsed();
    calls[first_dead as usize] += 1;

    // At most one probe per `retry_after` window, and the probes did happen.
    let probes = store.server_calls()[DEAD] - reached_before;
    let windows = (elapsed.as_millis() / RETRY_AFTER.as_millis()) as u64;
    assert!(
        probes <= windows + 1,
        "{probes} calls reached the dead server in {elapsed:?}"
    );
    assert!(
        probes >= 2,
        "the dead server was probed {probes} times in {elapsed:?}"
    );

    // The dead server's keys are computed on every call; the live servers' keys once,
    // and every later call of theirs is a hit.
    let mut live_hits = 0;
    for id in 0..KEYS {
        let computed = COMPUTED[id].load(Ordering::SeqCst);
        if on_dead[id] {
            assert_eq!(computed, calls[id], "key {id} on the dead server");
        } else {
            assert_eq!(computed, 1, "key {id} on a live server");
            live_hits += calls[id] - 1;
        }
    }
    assert!(live_hits > 1_000, "only {live_hits} hits in {elapsed:?}");
    assert_eq!(price::stats().hits, live_hits);
    let reached = store.server_calls();
    let live_calls: u64 = (0..KEYS)
        .filter(|id| !on_dead[*id])
        .map(|id| calls[id])
        .sum();
    assert!(
        reached[1] + reached[2] >= live_calls,
        "the live servers answered {reached:?} of {live_calls} calls"
    );
}
