//! `DiskStore` on a real directory: survival across processes, expiry across reopen, the
//! size bound, the atomic low-level API, corrupt bytes, the exclusive lock and a SIGKILL
//! in the middle of a write burst.
//!
//! The cross-process tests re-run this test binary as a child
//! ([`instances`](cachemacro_test_support::instances), only `instance_entry` selected), so
//! they need no example build and no shell.

#![cfg(feature = "disk")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachemacro_runtime::{memoize, CacheApi, DiskStore, Store, StoreError};
use cachemacro_test_support::instances::{self, Instance};
use cachemacro_test_support::race;

const CHILD_DIR: &str = "CACHEMACRO_DISK_TEST_DIR";

/// A directory under the system's temp dir, unique to this test run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "cachemacro-disk-{name}-{}-{nanos}",
            std::process::id()
        ));
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The instance entry: what a child process does; a no-op in a normal test run.
#[test]
fn instance_entry() {
    let Some(role) = instances::role() else {
        return;
    };
    let dir = PathBuf::from(instances::setting(CHILD_DIR));
    match role.as_str() {
        "memoize" => memoize_in_child(dir),
        "write_burst" => write_burst(&dir),
        "open" => match DiskStore::open(&dir) {
            Ok(_) => instances::report("opened", ""),
            Err(error) => instances::report("error", error),
        },
        other => panic!("unknown role {other}"),
    }
}

/// This test binary, run again as an instance playing `role` in `dir`.
fn child(role: &str, dir: &Path) -> Instance {
    Instance::start(
        "instance_entry",
        role,
        &[(CHILD_DIR, dir.to_str().expect("a UTF-8 temp dir"))],
    )
}

// --- memoized results survive the process -------------------------------------------

static CHILD_STORE_DIR: OnceLock<PathBuf> = OnceLock::new();
static NEARBY_CALLS: AtomicUsize = AtomicUsize::new(0);
static OPENING_CALLS: AtomicUsize = AtomicUsize::new(0);

/// One open store for every memoized function of the process: `#[memoize]` evaluates
/// `store = ..` once per function, and a directory can be opened only once.
fn disk_store() -> DiskStore {
    static STORE: OnceLock<DiskStore> = OnceLock::new();
    STORE
        .get_or_init(|| DiskStore::open(CHILD_STORE_DIR.get().unwrap()).unwrap())
        .clone()
}

#[memoize(ttl = "1h", store = disk_store())]
fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
    NEARBY_CALLS.fetch_add(1, Ordering::SeqCst);
    vec![format!("{postcode} high street"), format!("{radius} km")]
}

#[memoize(store = disk_store())]
fn opening_hours(store_id: u32) -> (u32, String) {
    OPENING_CALLS.fetch_add(1, Ordering::SeqCst);
    (store_id, "9-17".to_owned())
}

fn memoize_in_child(dir: PathBuf) {
    CHILD_STORE_DIR.set(dir).unwrap();
    let answers = [
        nearby_stores("EC1A 1BB", 5),
        nearby_stores("EC1A 1BB", 5),
        nearby_stores("EC11", 5),
        nearby_stores("EC1", 15),
    ];
    assert_eq!(answers[0], vec!["EC1A 1BB high street", "5 km"]);
    assert_eq!(answers[2], vec!["EC11 high street", "5 km"]);
    assert_eq!(answers[3], vec!["EC1 high street", "15 km"]);
    assert_eq!(opening_hours(7), (7, "9-17".to_owned()));
    instances::report("nearby_calls", NEARBY_CALLS.load(Ordering::SeqCst));
    instances::report("opening_calls", OPENING_CALLS.load(Ordering::SeqCst));
    let stats = nearby_stores::stats();
    instances::report("nearby_entries", stats.entries);
    instances::report("errors", stats.errors + opening_hours::stats().errors);
}

#[test]
fn memoized_results_survive_the_process_and_are_read_by_the_next_one() {
    let dir = TempDir::new("memoize");
    let run = || {
        let mut instance = child("memoize", dir.path());
        let answers = (
            instance.expect("nearby_calls"),
            instance.expect("opening_calls"),
            instance.expect("nearby_entries"),
            instance.expect("errors"),
        );
        instance.finish();
        answers
    };
    // First process: three distinct keys computed, one call a hit.
    assert_eq!(run(), ("3".into(), "1".into(), "3".into(), "0".into()));
    // Second process: everything read back from disk, nothing computed.
    assert_eq!(run(), ("0".into(), "0".into(), "3".into(), "0".into()));
}

// --- expiry ---------------------------------------------------------------------------

#[test]
fn ttl_keeps_running_while_the_store_is_closed() {
    let dir = TempDir::new("ttl");
    let store = DiskStore::builder(dir.path())
        .namespace("ttl")
        .build()
        .unwrap();
    store
        .insert("short", 1u64, Some(Duration::from_millis(300)))
        .unwrap();
    store
        .insert("long", 2u64, Some(Duration::from_secs(3600)))
        .unwrap();
    store.insert("forever", 3u64, None).unwrap();
    assert_eq!(store.get(&"short").unwrap(), Some(1));
    drop(store);

    thread::sleep(Duration::from_millis(900));
    let store = DiskStore::builder(dir.path())
        .namespace("ttl")
        .build()
        .unwrap();
    assert_eq!(Store::<&str, u64>::stats(&store).entries, 3);
    assert_eq!(store.get(&"short").unwrap(), None::<u64>);
    assert_eq!(store.get(&"long").unwrap(), Some(2u64));
    assert_eq!(store.get(&"forever").unwrap(), Some(3u64));
    let stats = Store::<&str, u64>::stats(&store);
    // The read that found it expired deleted it.
    assert_eq!((stats.entries, stats.expirations), (2, 1));
}

#[test]
fn default_ttl_applies_to_entries_written_without_one() {
    let dir = TempDir::new("default-ttl");
    let store = DiskStore::builder(dir.path())
        .ttl(Duration::from_millis(200))
        .build()
        .unwrap();
    store.insert(1u32, 1u32, None).unwrap();
    store
        .insert(2u32, 2u32, Some(Duration::from_secs(3600)))
        .unwrap();
    thread::sleep(Duration::from_millis(600));
    assert_eq!(store.get_many(&[1u32, 2]).unwrap(), vec![None, Some(2u32)]);
}

// --- size bound -----------------------------------------------------------------------

#[test]
fn max_bytes_is_respected_and_the_total_survives_reopen() {
    let dir = TempDir::new("max-bytes");
    let max_bytes = 8 * 1024;
    let open = || {
        DiskStore::builder(dir.path())
            .namespace("bounded")
            .max_bytes(max_bytes)
            .build()
            .unwrap()
    };
    let store = open();
    let value = |n: u32| format!("{n:>4}: {}", "x".repeat(100));
    for n in 0..300u32 {
        store.insert(n, value(n), None).unwrap();
        let bytes = store.stored_bytes().unwrap();
        assert!(bytes <= max_bytes, "{bytes} bytes after entry {n}");
    }
    let stats = Store::<u32, String>::stats(&store);
    assert!(stats.evictions > 200, "{stats:?}");
    assert_eq!(stats.entries + stats.evictions, 300);
    // Oldest written first (no entry has an expiry): the newest are all there.
    assert_eq!(store.get(&0u32).unwrap(), None::<String>);
    assert_eq!(store.get(&299u32).unwrap(), Some(value(299)));
    let bytes = store.stored_bytes().unwrap();
    drop(store);

    let store = open();
    assert_eq!(store.stored_bytes().unwrap(), bytes);
    assert_eq!(Store::<u32, String>::stats(&store).entries, stats.entries);
}

// --- the low-level API ---------------------------------------------------------------

/// 8 x 500: every increment is its own fsync'd commit (a few ms here), and the 16 000 of
/// the SQL store's test would take a minute without adding anything.
#[test]
fn incr_from_eight_threads_loses_no_increment() {
    let dir = TempDir::new("incr");
    let store = DiskStore::builder(dir.path())
        .namespace("counters")
        .build()
        .unwrap();
    race(8, |_| {
        for _ in 0..500 {
            CacheApi::<&str, i64>::incr(&store, &"hits", 1).unwrap();
        }
    });
    assert_eq!(store.get(&"hits").unwrap(), Some(4_000i64));
    assert_eq!(
        CacheApi::<&str, i64>::decr(&store, &"hits", 1_500).unwrap(),
        2_500
    );
    // A counter reads back as any integer type.
    assert_eq!(store.get(&"hits").unwrap(), Some(2_500u32));
}

/// Who appended in which round.
type Ledger = Vec<(u32, u32)>;

#[test]
fn cas_loops_from_several_threads_apply_every_update() {
    let dir = TempDir::new("cas");
    let store = DiskStore::open(dir.path()).unwrap();
    race(4, |thread_id| {
        let thread_id = thread_id as u32;
        for round in 0..50u32 {
            loop {
                let (mut seen, token): (Ledger, _) = match store.gets(&"ledger").unwrap() {
                    Some(found) => found,
                    None => (Vec::new(), CacheApi::<&str, Ledger>::absent_token(&store)),
                };
                seen.push((thread_id, round));
                if store.cas("ledger", seen, &token, None).unwrap() {
                    break;
                }
            }
        }
    });
    let ledger: Vec<(u32, u32)> = store.get(&"ledger").unwrap().unwrap();
    assert_eq!(ledger.len(), 200);
    for thread_id in 0..4 {
        let rounds: Vec<u32> = ledger
            .iter()
            .filter(|(id, _)| *id == thread_id)
            .map(|(_, round)| *round)
            .collect();
        assert_eq!(rounds, (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn add_touch_batches_and_clear_of_one_namespace() {
    let dir = TempDir::new("api");
    let books = DiskStore::builder(dir.path())
        .namespace("books")
        .build()
        .unwrap();
    let authors = books.in_namespace("authors");

    assert!(books.add(1u32, "Dune".to_owned(), None).unwrap());
    assert!(!books.add(1u32, "Emma".to_owned(), None).unwrap());
    assert_eq!(books.get(&1u32).unwrap(), Some("Dune".to_owned()));

    assert!(CacheApi::<u32, String>::touch(&books, &1, Some(Duration::from_millis(200))).unwrap());
    assert!(!CacheApi::<u32, String>::touch(&books, &2, None).unwrap());
    thread::sleep(Duration::from_millis(500));
    assert_eq!(books.get(&1u32).unwrap(), None::<String>);
    // An expired entry is absent for `add` too.
    assert!(books.add(1u32, "Emma".to_owned(), None).unwrap());

    books
        .set_many(
            vec![(2u32, "Ulysses".to_owned()), (3, "Middlemarch".to_owned())],
            None,
        )
        .unwrap();
    authors.insert(1u32, "Austen".to_owned(), None).unwrap();
    assert_eq!(
        books.get_many(&[1u32, 2, 3, 4]).unwrap(),
        vec![
            Some("Emma".to_owned()),
            Some("Ulysses".to_owned()),
            Some("Middlemarch".to_owned()),
            None
        ]
    );
    assert_eq!(
        CacheApi::<u32, String>::delete_many(&books, &[2, 3, 4]).unwrap(),
        2
    );

    Store::<u32, String>::clear(&books).unwrap();
    assert_eq!(books.get(&1u32).unwrap(), None::<String>);
    assert_eq!(authors.get(&1u32).unwrap(), Some("Austen".to_owned()));
}

// --- corrupt bytes --------------------------------------------------------------------

static CORRUPT_DIR: OnceLock<TempDir> = OnceLock::new();
static CORRUPT_CALLS: AtomicUsize = AtomicUsize::new(0);

fn corrupt_store() -> DiskStore {
    static STORE: OnceLock<DiskStore> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = CORRUPT_DIR.get_or_init(|| TempDir::new("corrupt"));
            DiskStore::open(dir.path()).unwrap()
        })
        .clone()
}

#[memoize(name = "corrupt", store = corrupt_store())]
fn decoded(n: u32) -> (u32, String) {
    CORRUPT_CALLS.fetch_add(1, Ordering::SeqCst);
    (n, n.to_string())
}

#[test]
fn bytes_of_another_type_are_a_miss_that_gets_overwritten() {
    assert_eq!(decoded(7), (7, "7".to_owned()));
    // The same key written as another type, as an older build of the program would.
    let raw = corrupt_store().in_namespace("corrupt");
    raw.insert((7u32,), vec![true, false], None).unwrap();
    let read: Result<Option<(u32, String)>, _> = raw.get(&(7u32,));
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");

    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(CORRUPT_CALLS.load(Ordering::SeqCst), 2);
    // The recomputed value replaced the bytes: the next call hits.
    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(CORRUPT_CALLS.load(Ordering::SeqCst), 2);
    let stats = decoded::stats();
    assert!(stats.errors >= 1, "the corrupt read is counted: {stats:?}");
    assert_eq!(stats.hits, 1);
    // The directory goes with the process's other temp dirs.
    let _ = std::fs::remove_dir_all(CORRUPT_DIR.get().unwrap().path());
}

// --- one process at a time ------------------------------------------------------------

#[test]
fn a_second_open_of_the_directory_is_a_clear_error() {
    let dir = TempDir::new("locked");
    let store = DiskStore::open(dir.path()).unwrap();
    let expect_clear = |message: String| {
        assert!(
            message.contains(&dir.path().display().to_string()),
            "names the directory: {message}"
        );
        assert!(message.contains("already open"), "says why: {message}");
    };

    // In this process.
    match DiskStore::open(dir.path()) {
        Err(error @ StoreError::Unavailable(_)) => expect_clear(error.to_string()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // From another process.
    let mut other = child("open", dir.path());
    let (name, message) = other.next_report().expect("the instance reports");
    assert_eq!(name, "error", "{message}");
    expect_clear(message);
    other.finish();

    // Once the store is dropped, the directory is free again.
    drop(store);
    let mut other = child("open", dir.path());
    assert_eq!(
        other.next_report().map(|(name, _)| name).as_deref(),
        Some("opened")
    );
    other.finish();
}

// --- crash safety ---------------------------------------------------------------------

fn burst_value(n: u64) -> String {
    format!("value {n} {}", "x".repeat((n % 97) as usize))
}

/// Writes entries until killed, reporting each key once its commit has returned.
fn write_burst(dir: &Path) {
    let store = DiskStore::open(dir).unwrap();
    for n in 0u64.. {
        store.insert(n, burst_value(n), None).unwrap();
        instances::report("committed", n);
    }
}

#[test]
fn sigkill_during_a_write_burst_keeps_every_committed_entry() {
    let dir = TempDir::new("sigkill");
    let mut burst = child("write_burst", dir.path());
    let mut committed = Vec::new();
    while committed.len() < 150 {
        let n = burst.expect("committed");
        committed.push(n.parse::<u64>().unwrap());
    }
    // SIGKILL while it is in the middle of its next commits.
    burst.kill();
    while let Some((name, n)) = burst.next_report() {
        // The last line may be cut short by the kill: then it was not all printed.
        if let (true, Ok(n)) = (name == "committed", n.parse::<u64>()) {
            committed.push(n);
        }
    }

    let store = DiskStore::open(dir.path()).expect("the store opens after the crash");
    for &n in &committed {
        assert_eq!(
            store.get(&n).unwrap(),
            Some(burst_value(n)),
            "entry {n} was reported committed"
        );
    }
    // And the store still takes writes.
    store.insert(u64::MAX, "after".to_owned(), None).unwrap();
    assert_eq!(store.get(&u64::MAX).unwrap(), Some("after".to_owned()));
}

#[test]
fn incr_existing_never_creates() {
    let dir = TempDir::new("incr-existing");
    let store = DiskStore::open(dir.path()).unwrap();
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", 1).unwrap(),
        None
    );
    assert_eq!(Store::<&str, i64>::get(&store, &"hits").unwrap(), None);
    CacheApi::<&str, i64>::incr(&store, &"hits", 10).unwrap();
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", 5).unwrap(),
        Some(15)
    );
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", -3).unwrap(),
        Some(12)
    );
}

// --- async calls never block the executor ----------------------------------------------

/// Counts the ticks of a 1 ms interval on the caller's runtime. Missed ticks are skipped,
/// not fired in a burst afterwards, so a stalled executor shows as a standstill.
fn ticker() -> Arc<AtomicUsize> {
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ticks);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    ticks
}

/// How long each phase keeps committing, at least: long enough for hundreds of ticks
/// however fast the disk (a tmpfs commits in microseconds).
const WRITE_PHASE: Duration = Duration::from_millis(300);
const COMMITS: usize = 50;

#[tokio::test(flavor = "current_thread")]
async fn disk_store_async_calls_do_not_block_the_executor() {
    let dir = TempDir::new("executor");
    let store = DiskStore::builder(dir.path())
        .namespace("executor")
        .build()
        .unwrap();
    let ticks = ticker();
    // Let the ticker start before anything is measured.
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Every call below is one fsync'd commit (fresh keys, so `add` always writes).
    let (started, before) = (std::time::Instant::now(), ticks.load(Ordering::SeqCst));
    let mut commits = 0;
    let mut round = 0u32;
    while commits < COMMITS || started.elapsed() < WRITE_PHASE {
        let entries = (0..4)
            .map(|n| (round * 4 + n, format!("value {n}")))
            .collect();
        store.set_many_async(entries, None).await.unwrap();
        CacheApi::<u32, i64>::incr_async(&store, &u32::MAX, 1)
            .await
            .unwrap();
        assert!(store
            .add_async(1_000_000 + round, "added".to_owned(), None)
            .await
            .unwrap());
        commits += 3;
        round += 1;
    }
    let (elapsed, ticked) = (started.elapsed(), ticks.load(Ordering::SeqCst) - before);
    assert_eq!(
        store.get_async(&u32::MAX).await.unwrap(),
        Some(i64::from(round))
    );
    // Unblocked, the ticker ticks about once a millisecond (~300 here); a tenth of that
    // allows for a slow shared machine. A blocked executor gives 0.
    let floor = WRITE_PHASE.as_millis() as usize / 10;
    assert!(
        ticked >= floor,
        "the ticker ticked {ticked} times during {commits} commits in {elapsed:?}"
    );

    // The control: the same commits through the blocking calls, made on the executor
    // thread, stop the ticker dead. This is what the assertion above tells apart.
    let (started, before) = (std::time::Instant::now(), ticks.load(Ordering::SeqCst));
    let mut commits = 0;
    while commits < COMMITS || started.elapsed() < WRITE_PHASE {
        CacheApi::<u32, i64>::incr(&store, &u32::MAX, 1).unwrap();
        commits += 1;
    }
    let ticked = ticks.load(Ordering::SeqCst) - before;
    assert_eq!(
        ticked, 0,
        "nothing else runs while the executor thread blocks"
    );
}
