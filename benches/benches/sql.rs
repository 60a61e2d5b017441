//! What `SqlStore` adds on top of the raw sqlx queries it runs.
//!
//! Run (about 2 minutes plus the first build; PostgreSQL must be installed, the bench
//! starts its own server on a free loopback port through `cachemacro-test-support`):
//!
//! ```text
//! cargo bench -p cachemacro-benches --features postgres --bench sql
//! ```
//!
//! - `sql_hit`: a `#[memoize(store = ..)]` hit, `Store::get` (sync) and
//!   `Store::get_async` (awaited with `block_on` from the bench's runtime) of a stored key, against the raw
//!   query doing the same work minus our layer: the same `SELECT` (with the expiry test)
//!   of the very key bytes the store writes, on the store's own pool, awaited with
//!   `block_on` on the bench's runtime, then the MessagePack decode of the value.
//! - `sql_miss`: a memoized call of a key never seen (lookup, computation, insert; the
//!   table grows by one row per iteration) against the raw `SELECT` that finds nothing
//!   followed by the raw `INSERT .. ON CONFLICT` of the encoded value; and a lookup of
//!   an absent key, store against raw.
//!
//! Ratios within one run only: the machine is shared, absolute times swing.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cachemacro_runtime::{memoize, SqlStore, SqlStoreBuilder, Store};
use cachemacro_test_support::nearby_shops;
use cachemacro_test_support::postgres::PostgresServer;
use criterion::{criterion_group, criterion_main, Criterion};

const PREFIX: &str = "bench";
const HIT_NAME: &str = "sql_nearby";
/// Generous: a slow answer on a loaded machine must not turn a hit into a (faster,
/// local) computation; the bench also asserts that no error happened.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
const POSTCODE: &str = "EC1A";
const RADIUS: u32 = 5;

/// The store's lookup, as the raw baseline runs it.
const SELECT: &str = "SELECT value FROM cachemacro_cache WHERE key = $1 AND \
    (expires_at IS NULL OR expires_at > (extract(epoch from statement_timestamp()) * 1000)::bigint)";
/// The store's insert without a time to live, as the raw baseline runs it.
const INSERT: &str = "INSERT INTO cachemacro_cache (key, value, expires_at) VALUES ($1, $2, NULL) \
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";

type Key = (String, u32);
type Value = Vec<String>;

static URL: OnceLock<String> = OnceLock::new();
static COMPUTED: AtomicUsize = AtomicUsize::new(0);
static FRESH: AtomicU32 = AtomicU32::new(0);

fn builder() -> SqlStoreBuilder {
    SqlStore::builder(URL.get().expect("server started first").as_str())
        .prefix(PREFIX)
        .connect_timeout(OPERATION_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .create_table(true)
}

fn sql_store() -> SqlStore {
    builder().build().expect("a valid URL")
}

/// About five short strings, the value of every benchmark (as in `benches/backends.rs`).
fn nearby(postcode: &str, radius: u32) -> Value {
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    nearby_shops(postcode, radius)
}

#[memoize(name = "sql_nearby", store = sql_store())]
fn sql_nearby(postcode: &str, radius: u32) -> Value {
    nearby(postcode, radius)
}

#[memoize(name = "sql_fresh", store = sql_store())]
fn sql_fresh(postcode: &str, radius: u32) -> Value {
    nearby(postcode, radius)
}

/// The key bytes `SqlStore` writes: `prefix:namespace:version:` and the MessagePack key.
fn key_bytes(namespace: &str, key: &Key) -> Vec<u8> {
    let mut bytes = format!("{PREFIX}:{namespace}:1:").into_bytes();
    rmp_serde::encode::write(&mut bytes, key).expect("a key encodes");
    bytes
}

fn decode(bytes: &[u8]) -> Value {
    rmp_serde::from_slice(bytes).expect("the stored value decodes")
}

fn sql_benches(c: &mut Criterion) {
    let server = PostgresServer::start();
    URL.set(server.url()).expect("set once");
    // Multi-thread, like the store's own: the raw queries share the store's pool, and a
    // connection they open belongs to this runtime, whose driver must keep running while
    // the store uses that connection.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    // The first call creates the table, computes and stores; every timed call is a hit.
    let expected = sql_nearby(POSTCODE, RADIUS);
    let key: Key = (POSTCODE.to_owned(), RADIUS);
    let stored_key = key_bytes(HIT_NAME, &key);
    let store = builder().namespace(HIT_NAME).build().unwrap();
    let pool = store.pool().unwrap();
    let raw_get = |key: &[u8]| -> Option<Vec<u8>> {
        runtime
            .block_on(
                sqlx::query_scalar::<_, Vec<u8>>(SELECT)
                    .bind(key)
                    .fetch_optional(&pool),
            )
            .unwrap()
    };
    assert_eq!(
        decode(&raw_get(&stored_key).expect("the raw SELECT reads the store's key")),
        expected
    );

    let mut group = c.benchmark_group("sql_hit");
    group.bench_function("memoized", |b| {
        b.iter(|| sql_nearby(black_box(POSTCODE), black_box(RADIUS)))
    });
    group.bench_function("store_get", |b| {
        b.iter(|| {
            let found: Option<Value> = store.get(black_box(&key)).unwrap();
            found
        })
    });
    group.bench_function("store_get_async", |b| {
        b.iter(|| {
            let found: Option<Value> = runtime.block_on(store.get_async(black_box(&key))).unwrap();
            found
        })
    });
    group.bench_function("raw_select_decode", |b| {
        b.iter(|| decode(&raw_get(black_box(&stored_key)).unwrap()))
    });
    group.finish();
    let stats = sql_nearby::stats();
    assert_eq!(
        (stats.misses, stats.errors),
        (1, 0),
        "every timed memoized call was a hit"
    );

    let absent: Key = ("nowhere".to_owned(), 0);
    let absent_key = key_bytes(HIT_NAME, &absent);
    let mut group = c.benchmark_group("sql_miss");
    group.bench_function("memoized_new_key", |b| {
        b.iter(|| sql_fresh(black_box(POSTCODE), FRESH.fetch_add(1, Ordering::Relaxed)))
    });
    group.bench_function("raw_select_insert", |b| {
        b.iter(|| {
            let radius = FRESH.fetch_add(1, Ordering::Relaxed);
            let key = key_bytes("raw_fresh", &(POSTCODE.to_owned(), radius));
            assert!(raw_get(&key).is_none());
            let value = rmp_serde::to_vec(&nearby(POSTCODE, radius)).unwrap();
            runtime
                .block_on(sqlx::query(INSERT).bind(key).bind(value).execute(&pool))
                .unwrap();
        })
    });
    group.bench_function("store_get_absent", |b| {
        b.iter(|| {
            let found: Option<Value> = store.get(black_box(&absent)).unwrap();
            assert!(found.is_none());
        })
    });
    group.bench_function("raw_select_absent", |b| {
        b.iter(|| assert!(raw_get(black_box(&absent_key)).is_none()))
    });
    group.finish();
    assert_eq!(sql_fresh::stats().errors, 0);
    drop(store);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = sql_benches
}
criterion_main!(benches);
