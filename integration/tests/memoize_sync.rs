//! Behaviour of `#[memoize]` on synchronous functions: hits, keys, expiry, capacity,
//! single-flight, panics, companions and value policies.

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cachemacro_runtime::memoize;
use cachemacro_test_support::race;

static NEARBY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "15m", capacity = 10_000)]
fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
    NEARBY_CALLS.fetch_add(1, Ordering::SeqCst);
    vec![format!("{postcode} within {radius} km")]
}

#[test]
fn repeated_calls_run_the_body_once_per_key() {
    let first = nearby_stores("EC1A", 5);
    assert_eq!(nearby_stores("EC1A", 5), first);
    assert_eq!(nearby_stores("EC1A", 5), first);
    assert_eq!(NEARBY_CALLS.load(Ordering::SeqCst), 1);

    // A Python view's '{}{}'.format(postcode, radius) key makes ("EC1", 15) and ("EC11", 5)
    // collide; a tuple key cannot.
    assert_eq!(
        nearby_stores("EC1", 15),
        vec!["EC1 within 15 km".to_owned()]
    );
    assert_eq!(
        nearby_stores("EC11", 5),
        vec!["EC11 within 5 km".to_owned()]
    );
    assert_eq!(NEARBY_CALLS.load(Ordering::SeqCst), 3);

    let stats = nearby_stores::stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 3, 3));
}

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn slow_square(n: u64) -> u64 {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(100));
    n * n
}

#[test]
fn sixteen_threads_on_one_cold_key_compute_once() {
    for answer in race(16, |_| slow_square(12)) {
        assert_eq!(answer, 144);
    }
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 1);
    let stats = slow_square::stats();
    assert_eq!((stats.misses, stats.hits), (1, 15));
    assert!(stats.coalesced <= 15);
}

static GATE: std::sync::Mutex<Option<mpsc::Receiver<()>>> = std::sync::Mutex::new(None);

#[memoize]
fn gated(key: u32) -> u32 {
    if key == 1 {
        // Key 1 blocks until the test has seen key 2 finish.
        let gate = GATE.lock().unwrap().take().expect("gate set");
        gate.recv_timeout(Duration::from_secs(10))
            .expect("key 2 finished first");
    }
    key * 10
}

#[test]
fn different_keys_never_wait_on_each_other() {
    let (open, gate) = mpsc::channel();
    *GATE.lock().unwrap() = Some(gate);
    let blocked = thread::spawn(|| gated(1));
    // Give key 1 time to start computing, then compute key 2 while it is still blocked.
    thread::sleep(Duration::from_millis(50));
    assert_eq!(gated(2), 20);
    open.send(()).unwrap();
    assert_eq!(blocked.join().unwrap(), 10);
}

static EXPIRING_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "60ms")]
fn expiring(n: u32) -> u32 {
    EXPIRING_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn entries_expire_after_their_ttl() {
    expiring(1);
    expiring(1);
    assert_eq!(EXPIRING_CALLS.load(Ordering::SeqCst), 1);
    thread::sleep(Duration::from_millis(250));
    expiring(1);
    assert_eq!(EXPIRING_CALLS.load(Ordering::SeqCst), 2);
}

static IDLE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(tti = "150ms")]
fn idle(n: u32) -> u32 {
    IDLE_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn entries_expire_when_idle_longer_than_tti() {
    idle(1);
    // Reads closer together than the tti keep the entry alive past one tti in total.
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(30));
        idle(1);
    }
    assert_eq!(IDLE_CALLS.load(Ordering::SeqCst), 1);
    thread::sleep(Duration::from_millis(500));
    idle(1);
    assert_eq!(IDLE_CALLS.load(Ordering::SeqCst), 2);
}

#[memoize(capacity = 2)]
fn bounded(n: u32) -> u32 {
    n + 1
}

#[test]
fn capacity_bounds_the_entries() {
    for n in 0..10 {
        assert_eq!(bounded(n), n + 1);
    }
    let stats = bounded::stats();
    assert_eq!(stats.entries, 2);
    assert_eq!(stats.evictions, 8);
}

static PANIC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn panics_first_time(n: u32) -> u32 {
    if PANIC_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("first computation fails");
    }
    n
}

#[test]
fn a_panicking_body_does_not_leave_the_key_stuck() {
    let caught = panic::catch_unwind(|| panics_first_time(7));
    assert!(caught.is_err());
    assert_eq!(panics_first_time(7), 7);
    assert_eq!(panics_first_time(7), 7);
    assert_eq!(PANIC_CALLS.load(Ordering::SeqCst), 2);
}

static LEADER_PANIC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn leader_panics(n: u32) -> u32 {
    let call = LEADER_PANIC_CALLS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(100));
    if call == 0 {
        panic!("the leader fails while others wait");
    }
    n
}

#[test]
fn followers_of_a_panicking_leader_recompute_once() {
    let results = race(8, |_| panic::catch_unwind(|| leader_panics(3)).ok());
    assert_eq!(results.iter().filter(|r| r.is_none()).count(), 1);
    assert!(results.iter().flatten().all(|&value| value == 3));
    // One failed leader, then exactly one successful computation for the followers.
    assert_eq!(LEADER_PANIC_CALLS.load(Ordering::SeqCst), 2);
}

#[derive(Debug, PartialEq)]
struct NotFound;

static LOOKUP_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn lookup(id: u32) -> Result<String, NotFound> {
    LOOKUP_CALLS.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        Err(NotFound)
    } else {
        Ok(format!("book {id}"))
    }
}

#[test]
fn err_results_are_returned_but_not_stored() {
    assert_eq!(lookup(0), Err(NotFound));
    assert_eq!(lookup(0), Err(NotFound));
    assert_eq!(LOOKUP_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(lookup(1), Ok("book 1".to_owned()));
    assert_eq!(lookup(1), Ok("book 1".to_owned()));
    assert_eq!(LOOKUP_CALLS.load(Ordering::SeqCst), 3);
}

static STRICT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(cache_err = true)]
fn strict_lookup(id: u32) -> Result<u32, String> {
    STRICT_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("no book {id}"))
}

#[test]
fn cache_err_stores_err_results_too() {
    assert_eq!(strict_lookup(4), Err("no book 4".to_owned()));
    assert_eq!(strict_lookup(4), Err("no book 4".to_owned()));
    assert_eq!(STRICT_CALLS.load(Ordering::SeqCst), 1);
}

static EVEN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(cache_if = |half: &u32| half.is_multiple_of(2))]
fn half(n: u32) -> u32 {
    EVEN_CALLS.fetch_add(1, Ordering::SeqCst);
    n / 2
}

#[test]
fn cache_if_decides_per_value() {
    half(4); // 2: stored
    half(4);
    half(6); // 3: not stored
    half(6);
    assert_eq!(EVEN_CALLS.load(Ordering::SeqCst), 3);
}

static RENDER_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(key = id)]
fn render(id: u64, request_id: u128) -> String {
    RENDER_CALLS.fetch_add(1, Ordering::SeqCst);
    let _ = request_id;
    format!("page {id}")
}

#[test]
fn a_custom_key_ignores_the_other_arguments() {
    assert_eq!(render(1, 100), "page 1");
    assert_eq!(render(1, 200), "page 1");
    assert_eq!(RENDER_CALLS.load(Ordering::SeqCst), 1);
    assert!(render::invalidate(1));
    assert!(!render::invalidate(1));
    assert_eq!(render(1, 300), "page 1");
    assert_eq!(RENDER_CALLS.load(Ordering::SeqCst), 2);
}

struct Db {
    name: &'static str,
}

static BOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ignore(db))]
fn book_title(db: &Db, id: u64) -> String {
    BOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{}#{id}", db.name)
}

#[test]
fn ignored_arguments_are_not_part_of_the_key() {
    let primary = Db { name: "primary" };
    let replica = Db { name: "replica" };
    assert_eq!(book_title(&primary, 9), "primary#9");
    assert_eq!(book_title(&replica, 9), "primary#9");
    assert_eq!(BOOK_CALLS.load(Ordering::SeqCst), 1);
}

#[memoize]
fn companions(word: &str) -> usize {
    word.len()
}

#[test]
fn invalidate_clear_and_stats_companions() {
    companions("alpha");
    companions("beta");
    assert!(companions::invalidate("alpha"));
    assert!(!companions::invalidate("alpha"));
    assert!(!companions::invalidate("gamma"));
    assert_eq!(companions::stats().entries, 1);
    companions::clear();
    assert_eq!(companions::stats().entries, 0);
    companions("beta");
    let stats = companions::stats();
    assert_eq!((stats.hits, stats.misses), (0, 3));
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Shop {
    id: u32,
}

static AREA_CALLS: AtomicUsize = AtomicUsize::new(0);
static SHARED_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Shop {
    #[memoize]
    fn floor_area(&self, floors: u32) -> u32 {
        AREA_CALLS.fetch_add(1, Ordering::SeqCst);
        self.id * floors
    }

    #[memoize(ignore(self))]
    fn opening_hours(&self, day: u8) -> String {
        SHARED_CALLS.fetch_add(1, Ordering::SeqCst);
        format!("day {day}: 9-17")
    }
}

#[test]
fn methods_key_on_self_unless_ignored() {
    let (a, b) = (Shop { id: 2 }, Shop { id: 3 });
    assert_eq!(a.floor_area(10), 20);
    assert_eq!(b.floor_area(10), 30);
    assert_eq!(a.floor_area(10), 20);
    assert_eq!(AREA_CALLS.load(Ordering::SeqCst), 2);
    assert!(a.floor_area_invalidate(10));
    assert_eq!(Shop::floor_area_stats().entries, 1);

    assert_eq!(a.opening_hours(1), "day 1: 9-17");
    assert_eq!(b.opening_hours(1), "day 1: 9-17");
    assert_eq!(SHARED_CALLS.load(Ordering::SeqCst), 1);
    Shop::opening_hours_clear();
    assert_eq!(Shop::opening_hours_stats().entries, 0);
}

static STALE_CALLS: AtomicUsize = AtomicUsize::new(0);
static STALE_GATE: std::sync::Mutex<Option<mpsc::Receiver<()>>> = std::sync::Mutex::new(None);

#[memoize(ttl = "100ms", stale = "1h")]
fn revalidated(n: u32) -> u32 {
    let call = STALE_CALLS.fetch_add(1, Ordering::SeqCst);
    if call == 1 {
        // The refresh blocks until the test has seen a stale value served meanwhile.
        let gate = STALE_GATE.lock().unwrap().take().expect("gate set");
        gate.recv_timeout(Duration::from_secs(10))
            .expect("stale value served first");
    }
    n * 100 + call as u32
}

#[test]
fn stale_values_are_served_while_one_caller_refreshes() {
    assert_eq!(revalidated(1), 100);
    assert_eq!(revalidated(1), 100);
    thread::sleep(Duration::from_millis(300)); // past the ttl, well within the stale window

    let (open, gate) = mpsc::channel();
    *STALE_GATE.lock().unwrap() = Some(gate);
    let refresher = thread::spawn(|| revalidated(1));
    // Wait until the refresh has started, then ask again: the old value, at once.
    while STALE_CALLS.load(Ordering::SeqCst) < 2 {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(revalidated(1), 100);
    open.send(()).unwrap();
    assert_eq!(refresher.join().unwrap(), 101);
    assert_eq!(
        revalidated(1),
        101,
        "the refreshed value replaced the stale one"
    );

    let stats = revalidated::stats();
    assert_eq!(stats.stale, 1);
    assert_eq!(stats.misses, 2);
    assert_eq!(STALE_CALLS.load(Ordering::SeqCst), 2);
}

static COLD_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn cold(key: u32) -> u32 {
    COLD_CALLS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(50));
    key
}

#[test]
fn sixty_four_threads_on_eight_cold_keys_compute_exactly_eight_times() {
    for (key, value) in race(64, |n| (n as u32 % 8, cold(n as u32 % 8))) {
        assert_eq!(key, value);
    }
    assert_eq!(COLD_CALLS.load(Ordering::SeqCst), 8);
    assert_eq!(cold::stats().misses, 8);
}

#[memoize(max_bytes = 1_000, weigher = |_: &(u32,), page: &String| page.len() as u32)]
fn rendered(n: u32) -> String {
    format!("{n:>100}")
}

#[test]
fn max_bytes_bounds_the_total_weight() {
    for n in 0..50 {
        assert_eq!(rendered(n).len(), 100);
    }
    let stats = rendered::stats();
    // 100 bytes each against 1 000: never more than ten at once.
    assert!(stats.entries <= 10, "{stats:?}");
    assert!(stats.evictions >= 40, "{stats:?}");
}
