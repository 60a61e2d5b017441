//! What a cache outage costs the callers of a memoized function: the latency of each call
//! while its server is out, for Redis (stalled: it accepts connections and never answers),
//! memcached (one of three servers stalled) and PostgreSQL (stopped), with 4 threads and
//! with 4 tokio tasks.
//!
//! Each call is a miss on a new key whose computation takes `COMPUTE` (a database query
//! standing in). The target: the median is the computation alone, and p99 at most the
//! operation timeout plus the computation (the calls in flight when the server stalled
//! wait out one timeout; after that, the server is skipped until `retry_after` passes and
//! one caller probes it).
//!
//! ```text
//! cargo run -p cachemacro-benches --release --features redis,memcached,postgres --example outage_latency
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, MemcachedStore, RedisStore, SqlStore};
use cachemacro_test_support::postgres::PostgresServer;
use cachemacro_test_support::{MemcachedServer, RedisServer};

const COMPUTE: Duration = Duration::from_millis(2);
const OUTAGE: Duration = Duration::from_secs(2);
const OPERATION_TIMEOUT: Duration = Duration::from_millis(100);
const RETRY_AFTER: Duration = Duration::from_millis(500);
const CALLERS: usize = 4;

static REDIS: OnceLock<RedisStore> = OnceLock::new();
static MEMCACHED: OnceLock<MemcachedStore> = OnceLock::new();
static POSTGRES: OnceLock<SqlStore> = OnceLock::new();

#[memoize(store = REDIS.get().unwrap().clone())]
fn redis_sync(n: u64) -> u64 {
    thread::sleep(COMPUTE);
    n
}

#[memoize(store = REDIS.get().unwrap().clone())]
async fn redis_async(n: u64) -> u64 {
    tokio::time::sleep(COMPUTE).await;
    n
}

#[memoize(store = MEMCACHED.get().unwrap().clone())]
fn memcached_sync(n: u64) -> u64 {
    thread::sleep(COMPUTE);
    n
}

#[memoize(store = MEMCACHED.get().unwrap().clone())]
async fn memcached_async(n: u64) -> u64 {
    tokio::time::sleep(COMPUTE).await;
    n
}

#[memoize(store = POSTGRES.get().unwrap().clone())]
fn postgres_sync(n: u64) -> u64 {
    thread::sleep(COMPUTE);
    n
}

#[memoize(store = POSTGRES.get().unwrap().clone())]
async fn postgres_async(n: u64) -> u64 {
    tokio::time::sleep(COMPUTE).await;
    n
}

/// Latencies of every call made by `CALLERS` threads during the outage.
fn threads(call: fn(u64) -> u64) -> Vec<Duration> {
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS as u64)
        .map(|caller| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let (started, mut latencies) = (Instant::now(), Vec::new());
                let mut n = caller << 40;
                while started.elapsed() < OUTAGE {
                    n += 1;
                    let call_started = Instant::now();
                    assert_eq!(call(n), n);
                    latencies.push(call_started.elapsed());
                }
                latencies
            })
        })
        .collect();
    callers
        .into_iter()
        .flat_map(|caller| caller.join().unwrap())
        .collect()
}

/// Latencies of every call made by `CALLERS` tasks on a 2-worker runtime.
fn tasks<F: std::future::Future<Output = u64> + Send + 'static>(
    call: fn(u64) -> F,
) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..CALLERS as u64)
            .map(|caller| {
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let (mut n, mut latencies) = (caller << 40, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let call_started = Instant::now();
                        assert_eq!(call(n).await, n);
                        latencies.push(call_started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        tokio::time::sleep(OUTAGE).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for caller in callers {
            all.extend(caller.await.unwrap());
        }
        all
    })
}

fn report(scenario: &str, mode: &str, mut latencies: Vec<Duration>, reached: u64) {
    latencies.sort_unstable();
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile) as usize];
    let millis = |duration: Duration| duration.as_secs_f64() * 1e3;
    let target = OPERATION_TIMEOUT + COMPUTE;
    println!(
        "| {scenario} | {mode} | {} | {reached} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        latencies.len(),
        millis(at(0.5)),
        millis(at(0.99)),
        millis(*latencies.last().unwrap()),
        millis(at(0.99)) / millis(target),
        if at(0.99) <= target { "met" } else { "missed" },
    );
}

fn main() {
    println!(
        "compute {COMPUTE:?}, operation timeout {OPERATION_TIMEOUT:?}, retry after {RETRY_AFTER:?}, {OUTAGE:?} outage, {CALLERS} callers\n"
    );
    println!("| store | callers | calls | reached the dead server | p50 ms | p99 ms | max ms | p99 / (timeout + compute) | target |");
    println!("|---|---|---|---|---|---|---|---|---|");

    let mut redis = RedisServer::start();
    let store = REDIS.get_or_init(|| {
        RedisStore::builder(redis.url())
            .operation_timeout(OPERATION_TIMEOUT)
            .retry_after(RETRY_AFTER)
            .build()
            .unwrap()
    });
    redis_sync(0);
    let before = store.server_calls()[0];
    redis.pause();
    let latencies = threads(redis_sync);
    report(
        "Redis, stalled",
        "4 threads",
        latencies,
        store.server_calls()[0] - before,
    );
    let before = store.server_calls()[0];
    let latencies = tasks(redis_async);
    report(
        "Redis, stalled",
        "4 tasks",
        latencies,
        store.server_calls()[0] - before,
    );
    redis.resume();

    let mut memcached: Vec<_> = (0..3).map(|_| MemcachedServer::start()).collect();
    let store = MEMCACHED.get_or_init(|| {
        MemcachedStore::builder(memcached.iter().map(MemcachedServer::address))
            .operation_timeout(OPERATION_TIMEOUT)
            .retry_after(RETRY_AFTER)
            .build()
            .unwrap()
    });
    memcached_sync(0);
    let before = store.server_calls()[1];
    memcached[1].pause();
    let latencies = threads(memcached_sync);
    report(
        "memcached, 1 of 3 stalled",
        "4 threads",
        latencies,
        store.server_calls()[1] - before,
    );
    let before = store.server_calls()[1];
    let latencies = tasks(memcached_async);
    report(
        "memcached, 1 of 3 stalled",
        "4 tasks",
        latencies,
        store.server_calls()[1] - before,
    );
    memcached[1].resume();

    let mut postgres = PostgresServer::start();
    let store = POSTGRES.get_or_init(|| {
        SqlStore::builder(postgres.url())
            .create_table(true)
            .operation_timeout(OPERATION_TIMEOUT)
            .retry_after(RETRY_AFTER)
            .build()
            .unwrap()
    });
    postgres_sync(0);
    let before = store.server_calls()[0];
    postgres.stop_immediately();
    let latencies = threads(postgres_sync);
    report(
        "PostgreSQL, stopped",
        "4 threads",
        latencies,
        store.server_calls()[0] - before,
    );
    let before = store.server_calls()[0];
    let latencies = tasks(postgres_async);
    report(
        "PostgreSQL, stopped",
        "4 tasks",
        latencies,
        store.server_calls()[0] - before,
    );
}
