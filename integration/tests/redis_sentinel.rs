//! `RedisStore::sentinel` against a real Sentinel group (a master, a replica, three
//! sentinels) started by each test: entries live on the master; a failover never costs a
//! wrong answer and moves the writes to the promoted replica before the old master is
//! demoted; the master's crash costs computations until the promotion; a stalled
//! sentinel is passed over; and a store whose sentinels are all gone fails fast.

#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, RedisStore, Store};
use cachemacro_test_support::sentinel::SentinelGroup;
use cachemacro_test_support::{free_port, RedisServer};

/// How long the calls after a failover may take to reach the new master and hit there:
/// the promotion itself, then the old master's demotion (about 9 s after the promotion),
/// which is what disconnects it.
const SWITCH_DEADLINE: Duration = Duration::from_secs(30);
/// Callers racing through the failover, besides the one that waits for the switch.
const CALLERS: usize = 3;
/// Keys the racing callers use; the switch is watched on keys above.
const PROBES: u64 = 1_000_000;

fn sentinel_store(group: &SentinelGroup, prefix: &str) -> RedisStore {
    RedisStore::sentinel(group.sentinel_urls(), group.master_name())
        .prefix(prefix)
        .connect_timeout(Duration::from_millis(200))
        .operation_timeout(Duration::from_millis(500))
        .retry_after(Duration::from_millis(100))
        .build()
        .expect("valid sentinel URLs")
}

/// A store on `node` alone, reading what a sentinel store wrote in `namespace`.
fn direct_store(node: &RedisServer, prefix: &str, namespace: &str) -> RedisStore {
    RedisStore::builder(node.url())
        .prefix(prefix)
        .namespace(namespace)
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn raw_keys(node: &RedisServer, db: u8, pattern: &str) -> Vec<Vec<u8>> {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{}/{db}", node.port))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut connection)
        .unwrap()
}

/// When a memoized function's error count moved while the switch was watched: printed
/// for whoever tunes the timings, asserted nowhere.
struct FaultWindow {
    started: Instant,
    errors: u64,
    counted: u64,
    moved: Option<(Duration, Duration)>,
}

impl FaultWindow {
    fn new(started: Instant, errors: u64) -> FaultWindow {
        FaultWindow {
            started,
            errors,
            counted: 0,
            moved: None,
        }
    }

    fn sample(&mut self, errors: u64) {
        if errors != self.errors {
            let now = self.started.elapsed();
            self.moved = Some((self.moved.map_or(now, |(first, _)| first), now));
            self.counted += errors - self.errors;
            self.errors = errors;
        }
    }
}

impl std::fmt::Debug for FaultWindow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.moved {
            Some((first, last)) => write!(
                formatter,
                "{} faults, first seen {first:?} and last {last:?} after the failover began",
                self.counted
            ),
            None => write!(formatter, "no faults seen"),
        }
    }
}

static SHARED_STORE: OnceLock<RedisStore> = OnceLock::new();
static SHARED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "1h", name = "shared", store = SHARED_STORE.get().expect("set by the test").clone())]
fn shelf(aisle: u32) -> Vec<String> {
    SHARED_CALLS.fetch_add(1, Ordering::SeqCst);
    vec![format!("aisle {aisle}")]
}

#[test]
fn entries_land_on_the_master_and_every_client_shares_them() {
    let group = SentinelGroup::start();
    let store = RedisStore::sentinel(group.sentinel_urls(), group.master_name())
        .prefix("sentinel")
        .sentinel_master_db(3)
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    SHARED_STORE.set(store).unwrap();

    assert_eq!(shelf(1), vec!["aisle 1".to_owned()]);
    assert_eq!(shelf(1), vec!["aisle 1".to_owned()]);
    assert_eq!(shelf(2), vec!["aisle 2".to_owned()]);
    assert_eq!(SHARED_CALLS.load(Ordering::SeqCst), 2);

    // On the master, in the database the builder named, not in database 0.
    assert_eq!(raw_keys(group.master(), 3, "sentinel:shared:*").len(), 2);
    assert!(raw_keys(group.master(), 0, "*").is_empty());

    // Another store (another process, in production) finds them through the sentinels.
    let other = RedisStore::sentinel(group.sentinel_urls(), group.master_name())
        .prefix("sentinel")
        .namespace("shared")
        .sentinel_master_db(3)
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let found: Option<Vec<String>> = other.get(&(2u32,)).unwrap();
    assert_eq!(found, Some(vec!["aisle 2".to_owned()]));

    // `clear` scans the master.
    shelf::clear();
    assert!(raw_keys(group.master(), 3, "sentinel:shared:*").is_empty());
    assert_eq!(shelf::stats().errors, 0);
}

/// Split brain: the sentinels have promoted the replica, but the old master stays master
/// until they demote it, some seconds later, and a connection opened to it before keeps
/// writing there, where the new master never sees it. The store's watch (every 100 ms
/// here) moves its writes to the new master while the old one still takes them.
#[test]
fn writes_follow_the_promoted_replica_while_the_old_master_still_takes_them() {
    let mut group = SentinelGroup::start();
    let store = RedisStore::sentinel(group.sentinel_urls(), group.master_name())
        .prefix("sentinel")
        .namespace("split")
        .sentinel_recheck(Duration::from_millis(100))
        .operation_timeout(Duration::from_millis(500))
        .retry_after(Duration::from_millis(100))
        .build()
        .unwrap();
    store.insert(0u64, 0u64, None).unwrap();
    let old_master = group.master().port;
    group.wait_for_replica();
    group.promote_replica();
    let (promoted, old) = (group.master(), group.replica());
    assert_eq!(old.port, old_master);
    let (on_promoted, on_old) = (
        direct_store(promoted, "sentinel", "split"),
        direct_store(old, "sentinel", "split"),
    );

    let started = Instant::now();
    let mut n = 0u64;
    let landed = loop {
        n += 1;
        // A write may fault while the connections are replaced; the next one is tried.
        let _ = store.insert(n, n * 7, None);
        let found: Option<u64> = on_promoted.get(&n).unwrap();
        if found == Some(n * 7) {
            break n;
        }
        assert!(
            old.cli(&["info", "replication"]).contains("role:master"),
            "the old master was demoted ({:?} after the promotion) before any write reached \
             the promoted replica",
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(10));
    };
    // Caught before the demotion: the old master still takes writes, and this one is not
    // there.
    assert!(old.cli(&["info", "replication"]).contains("role:master"));
    let on_old_master: Option<u64> = on_old.get(&landed).unwrap();
    assert_eq!(on_old_master, None, "written to the new master only");
    eprintln!(
        "writes reached the promoted replica {:?} after the promotion",
        started.elapsed()
    );
}

static SYNC_STORE: OnceLock<RedisStore> = OnceLock::new();
/// Computations of the keys written before the failover.
static SYNC_EARLY: AtomicUsize = AtomicUsize::new(0);
/// Computations of the probe keys.
static SYNC_PROBED: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "failover_sync", store = SYNC_STORE.get().expect("set by the test").clone())]
fn price(n: u64) -> u64 {
    if n < 20 {
        SYNC_EARLY.fetch_add(1, Ordering::SeqCst);
    }
    if n >= PROBES {
        SYNC_PROBED.fetch_add(1, Ordering::SeqCst);
    }
    n * 7
}

#[test]
fn sync_callers_get_every_value_through_a_failover_and_hit_on_the_new_master() {
    let mut group = SentinelGroup::start();
    SYNC_STORE.set(sentinel_store(&group, "sentinel")).unwrap();
    for n in 0..20 {
        assert_eq!(price(n), n * 7);
    }
    for n in 0..20 {
        assert_eq!(price(n), n * 7);
    }
    assert_eq!(
        SYNC_EARLY.load(Ordering::SeqCst),
        20,
        "the second round hit"
    );
    let old_master = group.master().port;
    assert_eq!(
        raw_keys(group.master(), 0, "sentinel:failover_sync:*").len(),
        20
    );
    group.wait_for_replica();

    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(CALLERS + 1));
    let callers: Vec<_> = (0..CALLERS as u64)
        .map(|caller| {
            let (stop, barrier) = (Arc::clone(&stop), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let mut n = 1_000 * (caller + 1);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    assert_eq!(price(n), n * 7, "every call gets its value");
                    assert_eq!(price(n % 20), (n % 20) * 7, "every call gets its value");
                    thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let failing_over = thread::spawn(move || {
        group.failover();
        group
    });
    let mut faults = FaultWindow::new(started, price::stats().errors);
    let mut probe = PROBES;
    while !failing_over.is_finished() {
        probe += 1;
        assert_eq!(price(probe), probe * 7, "every call gets its value");
        faults.sample(price::stats().errors);
        thread::sleep(Duration::from_millis(10));
    }
    let group = failing_over.join().unwrap();
    let new_master = group.master();
    assert_ne!(new_master.port, old_master);
    let on_new_master = direct_store(new_master, "sentinel", "failover_sync");

    // Fresh keys until one is written to the new master and then read back as a hit.
    loop {
        probe += 1;
        assert_eq!(price(probe), probe * 7);
        faults.sample(price::stats().errors);
        let written: Option<u64> = on_new_master.get(&(probe,)).unwrap();
        if written == Some(probe * 7) {
            let computed = SYNC_PROBED.load(Ordering::SeqCst);
            assert_eq!(price(probe), probe * 7);
            if SYNC_PROBED.load(Ordering::SeqCst) == computed {
                break;
            }
        }
        assert!(
            started.elapsed() < SWITCH_DEADLINE,
            "no write reached the new master within {SWITCH_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    faults.sample(price::stats().errors);
    eprintln!(
        "sync callers: hits on the new master {:?} after the failover began; {faults:?}",
        started.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }

    // The entries written before the failover were replicated: hits on the new master.
    let early = SYNC_EARLY.load(Ordering::SeqCst);
    for n in 0..20 {
        assert_eq!(price(n), n * 7);
    }
    assert_eq!(SYNC_EARLY.load(Ordering::SeqCst), early, "old entries hit");
    assert!(raw_keys(new_master, 0, "sentinel:failover_sync:*").len() > 20);
    // The store follows the promotion before the demotion breaks its connections, so the
    // switch may cost no fault at all; a crash does (see the test of a dying master).
    eprintln!("sync callers saw {} store faults", price::stats().errors);
}

static ASYNC_STORE: OnceLock<RedisStore> = OnceLock::new();
static ASYNC_EARLY: AtomicUsize = AtomicUsize::new(0);
static ASYNC_PROBED: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "failover_async", store = ASYNC_STORE.get().expect("set by the test").clone())]
async fn stock(n: u64) -> u64 {
    if n < 20 {
        ASYNC_EARLY.fetch_add(1, Ordering::SeqCst);
    }
    if n >= PROBES {
        ASYNC_PROBED.fetch_add(1, Ordering::SeqCst);
    }
    n * 11
}

#[test]
fn async_callers_get_every_value_through_a_failover_and_hit_on_the_new_master() {
    let mut group = SentinelGroup::start();
    ASYNC_STORE.set(sentinel_store(&group, "sentinel")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for n in 0..20 {
            assert_eq!(stock(n).await, n * 11);
        }
        for n in 0..20 {
            assert_eq!(stock(n).await, n * 11);
        }
        assert_eq!(
            ASYNC_EARLY.load(Ordering::SeqCst),
            20,
            "the second round hit"
        );
    });
    let old_master = group.master().port;
    assert_eq!(
        raw_keys(group.master(), 0, "sentinel:failover_async:*").len(),
        20
    );
    group.wait_for_replica();

    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS + 1));
    let callers: Vec<_> = (0..CALLERS as u64)
        .map(|caller| {
            let (stop, barrier) = (Arc::clone(&stop), Arc::clone(&barrier));
            runtime.spawn(async move {
                barrier.wait().await;
                let mut n = 1_000 * (caller + 1);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    assert_eq!(stock(n).await, n * 11, "every call gets its value");
                    assert_eq!(stock(n % 20).await, (n % 20) * 11);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    runtime.block_on(barrier.wait());
    let started = Instant::now();
    let failing_over = thread::spawn(move || {
        group.failover();
        group
    });
    let mut faults = FaultWindow::new(started, stock::stats().errors);
    let mut probe = PROBES;
    runtime.block_on(async {
        while !failing_over.is_finished() {
            probe += 1;
            assert_eq!(stock(probe).await, probe * 11, "every call gets its value");
            faults.sample(stock::stats().errors);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let group = failing_over.join().unwrap();
    let new_master = group.master();
    assert_ne!(new_master.port, old_master);
    let on_new_master = direct_store(new_master, "sentinel", "failover_async");

    runtime.block_on(async {
        loop {
            probe += 1;
            assert_eq!(stock(probe).await, probe * 11);
            faults.sample(stock::stats().errors);
            let written: Option<u64> = on_new_master.get(&(probe,)).unwrap();
            if written == Some(probe * 11) {
                let computed = ASYNC_PROBED.load(Ordering::SeqCst);
                assert_eq!(stock(probe).await, probe * 11);
                if ASYNC_PROBED.load(Ordering::SeqCst) == computed {
                    break;
                }
            }
            assert!(
                started.elapsed() < SWITCH_DEADLINE,
                "no write reached the new master within {SWITCH_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        faults.sample(stock::stats().errors);
        eprintln!(
            "async callers: hits on the new master {:?} after the failover began; {faults:?}",
            started.elapsed()
        );
        stop.store(true, Ordering::Relaxed);
        for caller in callers {
            caller.await.unwrap();
        }

        let early = ASYNC_EARLY.load(Ordering::SeqCst);
        for n in 0..20 {
            assert_eq!(stock(n).await, n * 11);
        }
        assert_eq!(ASYNC_EARLY.load(Ordering::SeqCst), early, "old entries hit");
    });
    assert!(raw_keys(new_master, 0, "sentinel:failover_async:*").len() > 20);
    eprintln!("async callers saw {} store faults", stock::stats().errors);
}

static CRASH_STORE: OnceLock<RedisStore> = OnceLock::new();
static CRASH_PROBED: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "crash", store = CRASH_STORE.get().expect("set by the test").clone())]
fn shelf_count(n: u64) -> u64 {
    if n >= PROBES {
        CRASH_PROBED.fetch_add(1, Ordering::SeqCst);
    }
    n * 13
}

#[test]
fn when_the_master_dies_callers_compute_until_the_replica_is_promoted_then_hit_there() {
    let mut group = SentinelGroup::start();
    CRASH_STORE.set(sentinel_store(&group, "crash")).unwrap();
    for n in 0..20 {
        assert_eq!(shelf_count(n), n * 13);
    }
    let started = Instant::now();
    let crashing = thread::spawn(move || {
        group.kill_master();
        group
    });
    let mut probe = PROBES;
    while !crashing.is_finished() {
        probe += 1;
        assert_eq!(shelf_count(probe), probe * 13, "every call gets its value");
        thread::sleep(Duration::from_millis(5));
    }
    let group = crashing.join().unwrap();
    assert!(
        shelf_count::stats().errors >= 1,
        "the dead master was counted"
    );
    let on_new_master = direct_store(group.master(), "crash", "crash");
    loop {
        probe += 1;
        assert_eq!(shelf_count(probe), probe * 13);
        let written: Option<u64> = on_new_master.get(&(probe,)).unwrap();
        if written == Some(probe * 13) {
            let computed = CRASH_PROBED.load(Ordering::SeqCst);
            assert_eq!(shelf_count(probe), probe * 13);
            if CRASH_PROBED.load(Ordering::SeqCst) == computed {
                break;
            }
        }
        assert!(
            started.elapsed() < SWITCH_DEADLINE,
            "no write reached the promoted replica within {SWITCH_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "after the crash: hits on the promoted replica {:?} later, {} faults",
        started.elapsed(),
        shelf_count::stats().errors
    );
}

static STALLED_SYNC_STORE: OnceLock<RedisStore> = OnceLock::new();
static STALLED_ASYNC_STORE: OnceLock<RedisStore> = OnceLock::new();

#[memoize(name = "stalled_sync", store = STALLED_SYNC_STORE.get().expect("set by the test").clone())]
fn aisle_sync(n: u64) -> u64 {
    n + 3
}

#[memoize(name = "stalled_async", store = STALLED_ASYNC_STORE.get().expect("set by the test").clone())]
async fn aisle_async(n: u64) -> u64 {
    n + 4
}

#[test]
fn a_stalled_sentinel_is_passed_over_for_the_next() {
    let mut group = SentinelGroup::start();
    // The first sentinel the stores know accepts connections and never answers.
    group.pause_sentinel(0);
    STALLED_SYNC_STORE
        .set(sentinel_store(&group, "stalled"))
        .unwrap();
    STALLED_ASYNC_STORE
        .set(sentinel_store(&group, "stalled"))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in 0..10 {
        assert_eq!(aisle_sync(n), n + 3);
        assert_eq!(runtime.block_on(aisle_async(n)), n + 4);
    }
    let master = group.nodes[0].port;
    group.resume_sentinel(0);
    assert_eq!(group.master().port, master);
    assert_eq!(
        raw_keys(group.master(), 0, "stalled:stalled_sync:*").len(),
        10
    );
    assert_eq!(
        raw_keys(group.master(), 0, "stalled:stalled_async:*").len(),
        10
    );
    assert_eq!(aisle_sync::stats().errors, 0);
    assert_eq!(aisle_async::stats().errors, 0);
}

static NOWHERE_STORE: OnceLock<RedisStore> = OnceLock::new();
static NOWHERE_CALLS: AtomicUsize = AtomicUsize::new(0);
const NOWHERE_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

#[memoize(name = "nowhere_sync", store = NOWHERE_STORE.get().expect("set by the test").clone())]
fn nowhere_sync(n: u64) -> u64 {
    NOWHERE_CALLS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

#[memoize(name = "nowhere_async", store = NOWHERE_STORE.get().expect("set by the test").clone())]
async fn nowhere_async(n: u64) -> u64 {
    NOWHERE_CALLS.fetch_add(1, Ordering::SeqCst);
    n + 2
}

#[test]
fn with_no_sentinel_reachable_calls_compute_and_fail_fast() {
    let sentinels: Vec<String> = (0..3)
        .map(|_| format!("redis://127.0.0.1:{}/", free_port()))
        .collect();
    let store = RedisStore::sentinel(sentinels, "nowhere")
        .connect_timeout(NOWHERE_CONNECT_TIMEOUT)
        // Past after every call: each one asks the sentinels again.
        .retry_after(Duration::from_millis(1))
        .build()
        .expect("nothing is connected by build");
    NOWHERE_STORE.set(store.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let started = Instant::now();
    for n in 0..50 {
        assert_eq!(nowhere_sync(n), n + 1);
        assert_eq!(runtime.block_on(nowhere_async(n)), n + 2);
        thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    assert_eq!(
        NOWHERE_CALLS.load(Ordering::SeqCst),
        100,
        "every call computed"
    );
    assert!(nowhere_sync::stats().errors >= 50);
    assert!(nowhere_async::stats().errors >= 50);
    // Each call got past the breaker and asked the sentinels, and was refused at once.
    assert!(store.server_calls()[0] >= 50, "{:?}", store.server_calls());
    assert!(
        elapsed < NOWHERE_CONNECT_TIMEOUT * 100 / 4,
        "100 calls took {elapsed:?}"
    );
}
