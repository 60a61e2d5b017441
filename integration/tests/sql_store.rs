//! `SqlStore` against a real PostgreSQL server that each test starts for itself
//! (`initdb` + `pg_ctl` on a free loopback port, see `test-support/src/postgres.rs`).

#![cfg(feature = "postgres")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, sql, CacheApi, SqlStore, SqlStoreBuilder, Store, StoreError};
use cachemacro_test_support::postgres::PostgresServer;
use cachemacro_test_support::{free_port, race};

/// Generous timeouts: the machine running the tests is shared and slow at times, and a
/// timed-out read would silently turn a hit into a computation.
fn builder(url: &str) -> SqlStoreBuilder {
    SqlStore::builder(url)
        .prefix("tests")
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(5))
        .retry_after(Duration::from_millis(200))
        .create_table(true)
}

fn store_at(url: &OnceLock<String>) -> SqlStore {
    builder(url.get().expect("test sets the URL first"))
        .build()
        .expect("a valid URL")
}

/// Raw SQL on the test's own connection, to look at the table behind the store's back.
struct Raw {
    runtime: tokio::runtime::Runtime,
    pool: sqlx::PgPool,
}

impl Raw {
    fn new(server: &PostgresServer) -> Raw {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = runtime
            .block_on(sqlx::PgPool::connect(&server.url()))
            .expect("the test server accepts connections");
        Raw { runtime, pool }
    }

    fn execute(&self, statement: &'static str) -> u64 {
        self.runtime
            .block_on(sqlx::query(statement).execute(&self.pool))
            .unwrap()
            .rows_affected()
    }

    fn count(&self, statement: &'static str) -> i64 {
        self.runtime
            .block_on(sqlx::query_scalar::<_, i64>(statement).fetch_one(&self.pool))
            .unwrap()
    }
}

static SHARED_URL: OnceLock<String> = OnceLock::new();
static SHARED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "1h", name = "shared", store = store_at(&SHARED_URL))]
fn shared_lookup(postcode: &str, radius: u32) -> Vec<String> {
    SHARED_CALLS.fetch_add(1, Ordering::SeqCst);
    vec![format!("{postcode}/{radius}")]
}

#[test]
fn entries_live_in_the_table_and_are_shared_by_every_app_instance() {
    let server = PostgresServer::start();
    SHARED_URL.set(server.url()).unwrap();

    assert_eq!(shared_lookup("EC1", 15), vec!["EC1/15".to_owned()]);
    assert_eq!(shared_lookup("EC1", 15), vec!["EC1/15".to_owned()]);
    assert_eq!(shared_lookup("EC11", 5), vec!["EC11/5".to_owned()]);
    assert_eq!(SHARED_CALLS.load(Ordering::SeqCst), 2);
    let stats = shared_lookup::stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (1, 2, 0));

    // Another application instance, with a store of its own, reads the same rows.
    let other = builder(&server.url()).namespace("shared").build().unwrap();
    let found: Option<Vec<String>> = other.get(&("EC1".to_owned(), 15u32)).unwrap();
    assert_eq!(found, Some(vec!["EC1/15".to_owned()]));

    // Two rows, expiring in an hour by the server's clock.
    let raw = Raw::new(&server);
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 2);
    let ttl_ms = raw.count(
        "SELECT min(expires_at - (extract(epoch from now()) * 1000)::bigint) FROM cachemacro_cache",
    );
    assert!(
        ttl_ms > 3_500_000 && ttl_ms <= 3_600_000,
        "expires in {ttl_ms} ms"
    );

    assert!(shared_lookup::invalidate("EC1", 15));
    assert!(!shared_lookup::invalidate("EC1", 15));
    shared_lookup::clear();
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 0);
    assert_eq!(shared_lookup::stats().errors, 0);
}

static ASYNC_URL: OnceLock<String> = OnceLock::new();
static ASYNC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "pages", store = store_at(&ASYNC_URL))]
async fn page(id: u64) -> String {
    ASYNC_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    format!("<h1>{id}</h1>")
}

#[test]
fn async_callers_share_one_computation_and_other_instances_hit() {
    let server = PostgresServer::start();
    ASYNC_URL.set(server.url()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    page(312).await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), "<h1>312</h1>");
        }
        assert_eq!(page(312).await, "<h1>312</h1>");
    });
    // The memoized function's store outlives the runtime its callers ran on.
    drop(runtime);
    assert_eq!(ASYNC_CALLS.load(Ordering::SeqCst), 1);
    let stats = page::stats();
    assert_eq!((stats.misses, stats.hits, stats.errors), (1, 8, 0));

    // A second instance, from a fresh current-thread runtime: async and sync reads.
    let other = builder(&server.url()).namespace("pages").build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found: Option<String> = runtime.block_on(other.get_async(&(312u64,))).unwrap();
    assert_eq!(found.as_deref(), Some("<h1>312</h1>"));
    let found: Option<String> = runtime.block_on(async { other.get(&(312u64,)) }).unwrap();
    assert_eq!(found.as_deref(), Some("<h1>312</h1>"));
    // Sync and async paths reach the same rows: an async insert read back in sync.
    runtime
        .block_on(other.insert_async((7u64,), "<h1>7</h1>".to_owned(), None))
        .unwrap();
    let found: Option<String> = other.get(&(7u64,)).unwrap();
    assert_eq!(found.as_deref(), Some("<h1>7</h1>"));
    assert!(runtime
        .block_on(Store::<(u64,), String>::remove_async(&other, &(7u64,)))
        .unwrap());
    // Dropped inside a runtime: its own runtime shuts down without blocking.
    runtime.block_on(async move { drop(other) });
}

#[test]
fn a_hit_counter_of_8_threads_x_2000_incr_is_exact() {
    let server = PostgresServer::start();
    let store = builder(&server.url())
        .namespace("counters")
        .build()
        .unwrap();
    race(8, |_| {
        for _ in 0..2_000 {
            CacheApi::<&str, i64>::incr(&store, &"hit_count", 1).unwrap();
        }
    });
    let hits: Option<i64> = store.get(&"hit_count").unwrap();
    assert_eq!(hits, Some(16_000));
    assert_eq!(
        CacheApi::<&str, i64>::decr(&store, &"hit_count", 6_000).unwrap(),
        10_000
    );
}

/// 8 threads x 200 read-modify-writes of a non-integer value (a MessagePack map), by
/// `gets` + `cas` retried on conflict: every update lands. (200 rather than 2 000 a
/// thread: each conflict costs a retry round trip, and the test should stay short.)
#[test]
fn a_gets_cas_retry_loop_never_loses_an_update() {
    let server = PostgresServer::start();
    let store = builder(&server.url()).namespace("cas").build().unwrap();
    let retries = AtomicUsize::new(0);
    race(8, |thread_id| {
        for _ in 0..200 {
            loop {
                let (mut tally, token) = match store.gets(&"tally").unwrap() {
                    Some(found) => found,
                    None => (
                        std::collections::BTreeMap::<String, u64>::new(),
                        CacheApi::<&str, std::collections::BTreeMap<String, u64>>::absent_token(
                            &store,
                        ),
                    ),
                };
                *tally.entry(format!("thread {thread_id}")).or_default() += 1;
                if store.cas("tally", tally, &token, None).unwrap() {
                    break;
                }
                retries.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let tally: std::collections::BTreeMap<String, u64> = store.get(&"tally").unwrap().unwrap();
    assert_eq!(tally.len(), 8);
    assert!(tally.values().all(|&count| count == 200), "{tally:?}");
    assert_eq!(tally.values().sum::<u64>(), 1_600);
    println!("cas conflicts retried: {}", retries.load(Ordering::Relaxed));
}

/// The naive hit counter, for contrast: `get` then `insert` from 8 threads loses
/// increments whenever two threads read the same count. Asserted only as "fewer than
/// all" (with 8 threads racing through 2 round trips each, some always collide).
#[test]
fn a_naive_get_then_set_counter_loses_updates() {
    let server = PostgresServer::start();
    let store = builder(&server.url()).namespace("naive").build().unwrap();
    Store::<&str, i64>::insert(&store, "count", 0, None).unwrap();
    race(8, |_| {
        for _ in 0..500 {
            let seen: i64 = store.get(&"count").unwrap().unwrap();
            store.insert("count", seen + 1, None).unwrap();
        }
    });
    let count: i64 = store.get(&"count").unwrap().unwrap();
    println!("naive counter: {count} of 4000");
    assert!(count < 4_000, "no update was lost this time: {count}");
    assert!(count >= 500);
}

#[test]
fn the_low_level_api_is_exact_and_treats_expired_rows_as_absent() {
    let server = PostgresServer::start();
    let store = builder(&server.url()).namespace("api").build().unwrap();
    let raw = Raw::new(&server);
    let hour = Some(Duration::from_secs(3600));

    // add: only into an absent key.
    assert!(store.add("a", "first".to_owned(), hour).unwrap());
    assert!(!store.add("a", "second".to_owned(), hour).unwrap());
    assert_eq!(store.get(&"a").unwrap(), Some("first".to_owned()));
    // An expired row counts as absent for add, get, touch and remove.
    raw.execute("UPDATE cachemacro_cache SET expires_at = 0");
    assert_eq!(Store::<&str, String>::get(&store, &"a").unwrap(), None);
    assert!(!CacheApi::<&str, String>::touch(&store, &"a", hour).unwrap());
    assert!(store.add("a", "third".to_owned(), hour).unwrap());
    assert_eq!(store.get(&"a").unwrap(), Some("third".to_owned()));
    raw.execute("UPDATE cachemacro_cache SET expires_at = 0");
    assert!(!Store::<&str, String>::remove(&store, &"a").unwrap());
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 0);

    // touch: sets or removes the expiry of a live row.
    Store::<&str, String>::insert(
        &store,
        "t",
        "x".to_owned(),
        Some(Duration::from_millis(300)),
    )
    .unwrap();
    assert!(CacheApi::<&str, String>::touch(&store, &"t", None).unwrap());
    assert_eq!(
        raw.count("SELECT count(*) FROM cachemacro_cache WHERE expires_at IS NULL"),
        1
    );
    assert!(!CacheApi::<&str, String>::touch(&store, &"missing", None).unwrap());

    // incr: starts at 0, counts in decimal text, restarts after expiry, and refuses a
    // value that is not a counter.
    assert_eq!(CacheApi::<&str, i64>::incr(&store, &"n", 5).unwrap(), 5);
    assert_eq!(CacheApi::<&str, i64>::decr(&store, &"n", 7).unwrap(), -2);
    assert_eq!(
        raw.count("SELECT count(*) FROM cachemacro_cache WHERE value = '\\x2d32'::bytea"),
        1,
        "stored as the text -2"
    );
    raw.execute("UPDATE cachemacro_cache SET expires_at = 0 WHERE value = '\\x2d32'::bytea");
    assert_eq!(CacheApi::<&str, i64>::incr(&store, &"n", 1).unwrap(), 1);
    assert!(matches!(
        CacheApi::<&str, i64>::incr(&store, &"t", 1),
        Err(StoreError::Corrupt(_))
    ));
    raw.execute("UPDATE cachemacro_cache SET value = '\\x39323233333732303336383534373735383037'::bytea WHERE value = '\\x31'::bytea");
    assert!(
        matches!(
            CacheApi::<&str, i64>::incr(&store, &"n", 1),
            Err(StoreError::Overflow)
        ),
        "i64::MAX + 1 overflows"
    );

    // cas: against the bytes read, and the absent token only while absent.
    let absent = CacheApi::<&str, u32>::absent_token(&store);
    assert!(store.cas("c", 1u32, &absent, None).unwrap());
    assert!(!store.cas("c", 2u32, &absent, None).unwrap());
    let (seen, token) = CacheApi::<&str, u32>::gets(&store, &"c").unwrap().unwrap();
    assert_eq!(seen, 1);
    assert!(store.cas("c", 3u32, &token, None).unwrap());
    assert!(
        !store.cas("c", 4u32, &token, None).unwrap(),
        "token is stale"
    );
    assert_eq!(store.get(&"c").unwrap(), Some(3u32));

    // Batches, one statement each.
    store
        .set_many(vec![("m1", 1u32), ("m2", 2), ("m1", 10), ("m3", 3)], hour)
        .unwrap();
    assert_eq!(
        store.get_many(&["m3", "nope", "m1", "m2", "m1"]).unwrap(),
        vec![Some(3), None, Some(10), Some(2), Some(10)]
    );
    assert_eq!(
        CacheApi::<&str, u32>::delete_many(&store, &["m1", "m2", "nope", "m1"]).unwrap(),
        2
    );
    assert_eq!(
        store.get_many(&["m1", "m2", "m3"]).unwrap(),
        vec![None, None, Some(3u32)]
    );
    assert_eq!(store.get_or_set("g", || 7u32, None).unwrap(), 7);
    assert_eq!(store.get_or_set("g", || 8u32, None).unwrap(), 7);

    // incr_version: moves the entry to the next version, atomically, keeping its ttl.
    assert_eq!(
        CacheApi::<&str, u32>::incr_version(&store, &"m3", 1).unwrap(),
        Some(2)
    );
    assert_eq!(Store::<&str, u32>::get(&store, &"m3").unwrap(), None);
    let v2 = builder(&server.url())
        .namespace("api")
        .version(2)
        .build()
        .unwrap();
    assert_eq!(Store::<&str, u32>::get(&v2, &"m3").unwrap(), Some(3));
    assert_eq!(
        CacheApi::<&str, u32>::incr_version(&store, &"m3", 1).unwrap(),
        None
    );
}

#[test]
fn expired_rows_are_misses_and_get_culled_in_batches() {
    let server = PostgresServer::start();
    let raw = Raw::new(&server);
    // Written by a store that never culls, then culled by one that does every 10 writes,
    // so that each background cull starts only once the previous one is done.
    let writer = builder(&server.url())
        .namespace("cull")
        .cull_every(0)
        .build()
        .unwrap();
    for start in (0..2_500u32).step_by(500) {
        let batch: Vec<(u32, u32)> = (start..start + 500).map(|k| (k, k)).collect();
        writer
            .set_many(batch, Some(Duration::from_millis(200)))
            .unwrap();
    }
    for n in 0..10u32 {
        writer.insert(100_000 + n, n, None).unwrap();
    }
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 2_510);
    thread::sleep(Duration::from_millis(600));
    assert_eq!(
        Store::<u32, u32>::get(&writer, &7).unwrap(),
        None,
        "expired: a miss"
    );
    assert_eq!(Store::<u32, u32>::get(&writer, &100_003).unwrap(), Some(3));
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 2_510);

    let culler = builder(&server.url())
        .namespace("cull")
        .cull_every(10)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for left in [1_510, 510] {
        // Ten writes (overwriting live rows): one background batch of 1 000.
        for n in 0..10u32 {
            culler.insert(100_000 + n, n, None).unwrap();
        }
        while raw.count("SELECT count(*) FROM cachemacro_cache") != left {
            assert!(Instant::now() < deadline, "the background cull did not run");
            thread::sleep(Duration::from_millis(20));
        }
    }
    // `cull` deletes the rest, batch after batch, and leaves live rows alone.
    assert_eq!(culler.cull().unwrap(), 500);
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 10);
    assert_eq!(Store::<u32, u32>::stats(&culler).expirations, 2_500);
    assert_eq!(Store::<u32, u32>::get(&culler, &100_009).unwrap(), Some(9));
}

#[test]
fn max_entries_culls_the_rows_closest_to_expiring() {
    let server = PostgresServer::start();
    let raw = Raw::new(&server);
    let store = builder(&server.url())
        .namespace("bounded")
        .max_entries(100)
        .cull_frequency(4)
        .cull_every(0)
        .build()
        .unwrap();
    for n in 0..140u32 {
        // Later keys live longer.
        let ttl = Duration::from_secs(3600 + u64::from(n));
        store.insert(n, n, Some(ttl)).unwrap();
    }
    for n in 140..150u32 {
        store.insert(n, n, None).unwrap();
    }
    // 150 rows over a bound of 100: a quarter (37) would not get back under it, so the
    // 50 closest to expiring go.
    assert_eq!(store.cull().unwrap(), 50);
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 100);
    assert_eq!(Store::<u32, u32>::get(&store, &49).unwrap(), None);
    assert_eq!(Store::<u32, u32>::get(&store, &50).unwrap(), Some(50));
    assert_eq!(Store::<u32, u32>::get(&store, &149).unwrap(), Some(149));
    assert_eq!(Store::<u32, u32>::stats(&store).evictions, 50);
    // Under the bound, a cull deletes nothing.
    assert_eq!(store.cull().unwrap(), 0);
}

static EXPIRY_URL: OnceLock<String> = OnceLock::new();
static EXPIRY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "200ms", name = "expiry", store = store_at(&EXPIRY_URL))]
fn short_lived(n: u32) -> u32 {
    EXPIRY_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn entries_expire_after_their_ttl() {
    let server = PostgresServer::start();
    EXPIRY_URL.set(server.url()).unwrap();
    short_lived(1);
    short_lived(1);
    assert_eq!(EXPIRY_CALLS.load(Ordering::SeqCst), 1);
    thread::sleep(Duration::from_millis(600));
    short_lived(1);
    assert_eq!(EXPIRY_CALLS.load(Ordering::SeqCst), 2);
    short_lived(1);
    assert_eq!(EXPIRY_CALLS.load(Ordering::SeqCst), 2);
}

#[test]
fn clear_removes_only_its_own_namespace() {
    let server = PostgresServer::start();
    let raw = Raw::new(&server);
    let books = builder(&server.url()).namespace("books").build().unwrap();
    let books_v2 = builder(&server.url())
        .namespace("books")
        .version(2)
        .build()
        .unwrap();
    let authors = builder(&server.url()).namespace("authors").build().unwrap();
    // A namespace that sorts right after "books:" in bytes, and another application.
    let booksy = builder(&server.url()).namespace("books;").build().unwrap();
    let other_app = SqlStore::builder(server.url())
        .prefix("other")
        .namespace("books")
        .create_table(true)
        .build()
        .unwrap();
    for store in [&books, &books_v2, &authors, &booksy, &other_app] {
        for n in 0..10u32 {
            store.insert(n, n, None).unwrap();
        }
    }
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 50);
    Store::<u32, u32>::clear(&books).unwrap();
    // Both versions of `books` went; the rest stayed.
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 30);
    assert_eq!(Store::<u32, u32>::get(&books_v2, &3).unwrap(), None);
    for store in [&authors, &booksy, &other_app] {
        assert_eq!(Store::<u32, u32>::get(store, &3).unwrap(), Some(3));
    }
}

static CORRUPT_URL: OnceLock<String> = OnceLock::new();
static CORRUPT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "corrupt", store = store_at(&CORRUPT_URL))]
fn decoded(n: u32) -> (u32, String) {
    CORRUPT_CALLS.fetch_add(1, Ordering::SeqCst);
    (n, n.to_string())
}

#[test]
fn corrupt_bytes_are_a_miss_that_gets_overwritten() {
    let server = PostgresServer::start();
    CORRUPT_URL.set(server.url()).unwrap();
    let raw = Raw::new(&server);
    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(
        raw.execute("UPDATE cachemacro_cache SET value = '\\xc1206e6f74206d7367'::bytea"),
        1
    );

    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(CORRUPT_CALLS.load(Ordering::SeqCst), 2);
    // The recomputed value replaced the garbage: the next call hits.
    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(CORRUPT_CALLS.load(Ordering::SeqCst), 2);
    let stats = decoded::stats();
    assert!(stats.errors >= 1, "the corrupt read is counted: {stats:?}");
    assert_eq!(stats.hits, 1);

    // Read directly, the same bytes are `Corrupt`, not a panic.
    raw.execute("UPDATE cachemacro_cache SET value = '\\xc1'::bytea");
    let store = builder(&server.url()).namespace("corrupt").build().unwrap();
    assert!(matches!(
        Store::<(u32,), (u32, String)>::get(&store, &(7,)),
        Err(StoreError::Corrupt(_))
    ));
}

static OUTAGE_URL: OnceLock<String> = OnceLock::new();
static OUTAGE_CALLS: AtomicUsize = AtomicUsize::new(0);
static OUTAGE_ASYNC_CALLS: AtomicUsize = AtomicUsize::new(0);

fn outage_store() -> SqlStore {
    builder(OUTAGE_URL.get().expect("test sets the URL first"))
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[memoize(name = "outage", store = outage_store())]
fn through_outage(n: u32) -> u32 {
    OUTAGE_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[memoize(name = "outage_async", store = outage_store())]
async fn through_outage_async(n: u32) -> u32 {
    OUTAGE_ASYNC_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 3
}

#[test]
fn a_stopped_server_never_fails_callers_and_hits_resume_after_restart() {
    let mut server = PostgresServer::start();
    OUTAGE_URL.set(server.url()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(through_outage(1), 2);
    assert_eq!(through_outage(1), 2);
    assert_eq!(runtime.block_on(through_outage_async(1)), 3);
    assert_eq!(runtime.block_on(through_outage_async(1)), 3);
    assert_eq!(OUTAGE_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(OUTAGE_ASYNC_CALLS.load(Ordering::SeqCst), 1);

    server.stop_immediately();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(through_outage(1), 2);
        assert_eq!(runtime.block_on(through_outage_async(1)), 3);
    }
    // Each of the 10 calls computed; the pooled connections' errors and then the
    // back-off kept every call short (one connect timeout at most, not ten).
    assert_eq!(OUTAGE_CALLS.load(Ordering::SeqCst), 6);
    assert_eq!(OUTAGE_ASYNC_CALLS.load(Ordering::SeqCst), 6);
    assert!(through_outage::stats().errors >= 5);
    assert!(through_outage_async::stats().errors >= 5);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "callers waited {:?} in total",
        started.elapsed()
    );

    server.restart(); // the rows written before the crash are still there
    thread::sleep(Duration::from_millis(400)); // past retry_after
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = (
            OUTAGE_CALLS.load(Ordering::SeqCst),
            OUTAGE_ASYNC_CALLS.load(Ordering::SeqCst),
        );
        assert_eq!(through_outage(1), 2);
        assert_eq!(runtime.block_on(through_outage_async(1)), 3);
        let after = (
            OUTAGE_CALLS.load(Ordering::SeqCst),
            OUTAGE_ASYNC_CALLS.load(Ordering::SeqCst),
        );
        if before == after {
            break; // both hit
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume after the restart"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let errors = through_outage::stats().errors;
    assert_eq!(through_outage(1), 2);
    assert_eq!(
        through_outage::stats().errors,
        errors,
        "no new errors once back"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn sync_calls_work_inside_a_current_thread_runtime() {
    let server = PostgresServer::start();
    let store = builder(&server.url()).namespace("nested").build().unwrap();
    // A sync memoized function called from async code blocks its thread for the round
    // trip; the query itself runs on the store's runtime, so this cannot deadlock.
    store.insert(1u32, "one".to_owned(), None).unwrap();
    assert_eq!(store.get(&1u32).unwrap(), Some("one".to_owned()));
    assert_eq!(
        Store::<u32, String>::get_async(&store, &1).await.unwrap(),
        Some("one".to_owned())
    );
    assert_eq!(CacheApi::<u32, i64>::incr(&store, &2, 4).unwrap(), 4);
    drop(store);
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_low_level_api_is_exact_too() {
    let server = PostgresServer::start();
    let store = Arc::new(
        builder(&server.url())
            .namespace("async_api")
            .build()
            .unwrap(),
    );
    let hour = Some(Duration::from_secs(3600));

    // 8 tasks x 500 increments on one current-thread runtime: exact.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..500 {
                    CacheApi::<&str, i64>::incr_async(&*store, &"hits", 1)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        CacheApi::<&str, i64>::decr_async(&*store, &"hits", 0)
            .await
            .unwrap(),
        4_000
    );

    assert!(store.add_async("a", 1u32, hour).await.unwrap());
    assert!(!store.add_async("a", 2u32, hour).await.unwrap());
    assert!(CacheApi::<&str, u32>::touch_async(&*store, &"a", None)
        .await
        .unwrap());
    let (seen, token) = CacheApi::<&str, u32>::gets_async(&*store, &"a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, 1);
    assert!(store.cas_async("a", 5u32, &token, None).await.unwrap());
    assert!(!store.cas_async("a", 6u32, &token, None).await.unwrap());
    store
        .set_many_async(vec![("b", 2u32), ("c", 3)], hour)
        .await
        .unwrap();
    assert_eq!(
        store.get_many_async(&["c", "x", "a", "b"]).await.unwrap(),
        vec![Some(3u32), None, Some(5), Some(2)]
    );
    assert_eq!(
        CacheApi::<&str, u32>::delete_many_async(&*store, &["a", "b", "x"])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        CacheApi::<&str, u32>::get_many_async(&*store, &[])
            .await
            .unwrap(),
        vec![]
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_not_a_panic() {
    let store = SqlStore::builder(format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        free_port()
    ))
    .connect_timeout(Duration::from_millis(300))
    .retry_after(Duration::from_secs(30))
    .build()
    .unwrap();
    assert!(Store::<u32, u32>::get(&store, &1).is_err());
    // Marked down: the next calls fail at once instead of waiting for a connect.
    let started = Instant::now();
    assert!(matches!(
        Store::<u32, u32>::insert(&store, 1, 1, None),
        Err(StoreError::Unavailable(_))
    ));
    assert!(Store::<u32, u32>::remove(&store, &1).is_err());
    assert!(CacheApi::<u32, i64>::incr(&store, &1, 1).is_err());
    // Three connect attempts would take 900 ms; the margin is for a loaded machine.
    assert!(started.elapsed() < Duration::from_millis(250));
    assert!(SqlStore::new("not a url").is_err());
}

#[test]
fn a_missing_table_is_reported_and_migrate_creates_it() {
    let server = PostgresServer::start();
    let store = builder(&server.url())
        .create_table(false)
        .table("page_cache")
        .namespace("migrate")
        .build()
        .unwrap();
    match Store::<u32, u32>::get(&store, &1) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("sql::migrate"), "{message}");
        }
        other => panic!("expected a missing-table error, got {other:?}"),
    }
    let raw = Raw::new(&server);
    raw.runtime.block_on(async {
        sql::migrate_table(&raw.pool, "page_cache").await.unwrap();
        // Idempotent, and safe to run concurrently.
        let (first, second) = tokio::join!(
            sql::migrate_table(&raw.pool, "page_cache"),
            sql::migrate(&raw.pool)
        );
        first.unwrap();
        second.unwrap();
        assert!(sql::migrate_table(&raw.pool, "bad name").await.is_err());
    });
    // A missing table fails every call alike, so the store skipped the server for
    // `retry_after` (200 ms) after that first one.
    thread::sleep(Duration::from_millis(400)); // past retry_after
    store.insert(1u32, 10u32, None).unwrap();
    assert_eq!(store.get(&1u32).unwrap(), Some(10u32));
    assert_eq!(raw.count("SELECT count(*) FROM page_cache"), 1);
    assert_eq!(raw.count("SELECT count(*) FROM cachemacro_cache"), 0);
    assert_eq!(
        raw.count(
            "SELECT count(*) FROM pg_indexes WHERE indexname IN \
             ('page_cache_expires_at', 'cachemacro_cache_expires_at')"
        ),
        2
    );

    // A store that creates its table does so again when the table disappears.
    let creating = builder(&server.url())
        .table("page_cache")
        .namespace("migrate")
        .build()
        .unwrap();
    assert_eq!(creating.get(&1u32).unwrap(), Some(10u32));
    raw.execute("DROP TABLE page_cache");
    assert!(Store::<u32, u32>::get(&creating, &1).is_err());
    assert_eq!(Store::<u32, u32>::get(&creating, &1).unwrap(), None);
    creating.insert(1u32, 11u32, None).unwrap();
    assert_eq!(store.get(&1u32).unwrap(), Some(11u32));
}

#[test]
fn incr_existing_never_creates_and_skips_expired_rows() {
    let server = PostgresServer::start();
    let store = builder(&server.url())
        .namespace("existing")
        .build()
        .unwrap();
    let raw = Raw::new(&server);
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", 1).unwrap(),
        None
    );
    assert_eq!(
        raw.count("SELECT count(*) FROM cachemacro_cache"),
        0,
        "nothing created"
    );
    CacheApi::<&str, i64>::incr(&store, &"hits", 10).unwrap();
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", 5).unwrap(),
        Some(15)
    );
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", -3).unwrap(),
        Some(12)
    );
    raw.execute("UPDATE cachemacro_cache SET expires_at = 0");
    assert_eq!(
        CacheApi::<&str, i64>::incr_existing(&store, &"hits", 1).unwrap(),
        None
    );
}

#[test]
fn an_overflowing_counter_is_overflow_and_stays_as_it_was() {
    let server = PostgresServer::start();
    let store = builder(&server.url())
        .namespace("overflow")
        .build()
        .unwrap();
    let raw = Raw::new(&server);
    let incr = |key: &str, delta: i64| CacheApi::<&str, i64>::incr(&store, &key, delta);
    let incr_existing =
        |key: &str, delta: i64| CacheApi::<&str, i64>::incr_existing(&store, &key, delta);

    assert_eq!(incr("top", i64::MAX).unwrap(), i64::MAX);
    assert!(matches!(incr("top", 1), Err(StoreError::Overflow)));
    assert!(matches!(incr_existing("top", 1), Err(StoreError::Overflow)));
    // Not a fault of the server: the very next call is served, and the counter is intact.
    assert_eq!(
        Store::<&str, i64>::get(&store, &"top").unwrap(),
        Some(i64::MAX)
    );
    assert_eq!(incr_existing("top", -1).unwrap(), Some(i64::MAX - 1));
    assert_eq!(incr("top", 1).unwrap(), i64::MAX);

    assert_eq!(incr("bottom", i64::MIN).unwrap(), i64::MIN);
    assert!(matches!(
        CacheApi::<&str, i64>::decr(&store, &"bottom", 1),
        Err(StoreError::Overflow)
    ));
    assert!(matches!(
        incr_existing("bottom", -1),
        Err(StoreError::Overflow)
    ));
    assert_eq!(
        Store::<&str, i64>::get(&store, &"bottom").unwrap(),
        Some(i64::MIN)
    );
    assert_eq!(
        raw.count(
            "SELECT count(*) FROM cachemacro_cache WHERE value = '-9223372036854775808'::bytea"
        ),
        1,
        "stored as decimal text, unchanged"
    );

    // Text that is an integer but not a signed 64-bit one is no counter at all.
    raw.execute("UPDATE cachemacro_cache SET value = '99999999999999999999'::bytea");
    assert!(matches!(incr("top", 1), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        incr_existing("top", 1),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(incr("fresh", -5).unwrap(), -5);
}

static FLAPPING_STORE: OnceLock<SqlStore> = OnceLock::new();
static FLAPPING_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Shares its fail-fast state (and `server_calls`) with the store in `FLAPPING_STORE`.
fn flapping_store() -> SqlStore {
    FLAPPING_STORE
        .get()
        .expect("test sets the store first")
        .clone()
}

#[memoize(name = "flapping", store = flapping_store())]
fn through_flapping(n: u32) -> u64 {
    FLAPPING_CALLS.fetch_add(1, Ordering::SeqCst);
    u64::from(n) * 7
}

/// 4 threads calling through a server that stops under them: nobody fails, and while it
/// is down the store reaches it at most once per `retry_after` (one probe), not once
/// per call.
#[test]
fn while_the_server_is_down_callers_compute_and_only_one_probe_per_retry_after_reaches_it() {
    const RETRY_AFTER: Duration = Duration::from_millis(500);
    let mut server = PostgresServer::start();
    let store = builder(&server.url())
        .connect_timeout(Duration::from_millis(300))
        .operation_timeout(Duration::from_secs(2))
        .retry_after(RETRY_AFTER)
        .build()
        .unwrap();
    FLAPPING_STORE.set(store.clone()).unwrap();
    for n in 0..8 {
        assert_eq!(through_flapping(n), u64::from(n) * 7);
    }
    assert_eq!(FLAPPING_CALLS.load(Ordering::SeqCst), 8);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(5));
    let threads: Vec<_> = (0..4u32)
        .map(|thread_id| {
            let (stop, barrier) = (Arc::clone(&stop), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let mut calls = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    // Cached keys and keys never seen, so both hits and misses go through.
                    let n = (thread_id * 1_000 + calls) % 16;
                    assert_eq!(through_flapping(n), u64::from(n) * 7);
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(Duration::from_millis(200)); // the threads hit a live server first
    server.stop_immediately();

    // Counting starts once the breaker is open: a call that fails without reaching the
    // server (its count unchanged across it) was skipped.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = store.server_calls()[0];
        let skipped = Store::<(u32,), u64>::get(&store.in_namespace("flapping"), &(1,)).is_err()
            && store.server_calls()[0] == before;
        if skipped {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server was never marked down"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let (down_calls, down_since) = (store.server_calls()[0], Instant::now());
    thread::sleep(Duration::from_secs(2));
    let (up_calls, down_for) = (store.server_calls()[0], down_since.elapsed());
    let windows = (down_for.as_millis() / RETRY_AFTER.as_millis()) as u64;
    assert!(
        up_calls - down_calls <= windows + 1,
        "{} calls reached the stopped server in {down_for:?} (at most {} allowed)",
        up_calls - down_calls,
        windows + 1
    );

    stop.store(true, Ordering::SeqCst);
    let calls: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        calls > 40,
        "callers were held up during the outage: {calls} calls"
    );
    assert!(through_flapping::stats().errors > 0);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = FLAPPING_CALLS.load(Ordering::SeqCst);
        assert_eq!(through_flapping(3), 21);
        if FLAPPING_CALLS.load(Ordering::SeqCst) == before {
            break; // a hit
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume after the restart"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let errors = through_flapping::stats().errors;
    assert_eq!(through_flapping(3), 21);
    assert_eq!(
        through_flapping::stats().errors,
        errors,
        "no new errors once back"
    );
}

/// `incr_existing` locks the row, then writes what fits: concurrent callers queue on the
/// lock and each counts from the value the previous one wrote.
#[test]
fn incr_existing_from_8_threads_is_exact() {
    let server = PostgresServer::start();
    let store = builder(&server.url())
        .namespace("existing_race")
        .build()
        .unwrap();
    CacheApi::<&str, i64>::incr(&store, &"hits", 0).unwrap();
    race(8, |_| {
        for _ in 0..500 {
            let counted = CacheApi::<&str, i64>::incr_existing(&store, &"hits", 1);
            assert!(counted.unwrap().is_some());
        }
    });
    assert_eq!(
        Store::<&str, i64>::get(&store, &"hits").unwrap(),
        Some(4_000)
    );
}
