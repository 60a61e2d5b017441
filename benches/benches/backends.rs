//! What the remote stores add on top of the client they wrap.
//!
//! Run (short, for a shared 2-core machine; needs `redis-server` and `memcached`
//! installed, the bench starts its own on free loopback ports):
//!
//! ```text
//! cargo bench -p cachemacro-benches --features redis,memcached --bench backends
//! ```
//!
//! - `redis_hit`, `memcached_hit`: a `#[memoize(store = ..)]` hit against the raw client
//!   doing the same work minus our layer: a `GET` of the very key bytes the store writes
//!   (checked in the setup) and the MessagePack decode of the same value, on a connection
//!   of the same kind to the same server. `store_get` is `Store::get` without the macro,
//!   and `raw_encode_key_get_decode` the raw client that also encodes the key on every
//!   call, so the layers' costs can be told apart. `*_interleaved` time the memoized hit
//!   and the raw read alternately (each timing one, running the other untimed in
//!   between), so load drift on a shared machine hits both alike: the ratio to read.
//!   Target: memoized <= 1.10x raw.
//! - `redis_batch_100`, `memcached_batch_100`: `CacheApi::get_many` and `set_many` of
//!   100 keys against 100 sequential `Store::get` / `Store::insert` calls on the same
//!   store.
//!
//! Ratios within one run only: the machine is shared, absolute times swing.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, CacheApi, MemcachedStore, RedisStore, RedisStoreBuilder, Store};
use cachemacro_test_support::{nearby_shops, MemcachedServer, RedisServer};
use criterion::{criterion_group, criterion_main, Bencher, Criterion};

/// Every key starts with this, as a user's application name would.
const PREFIX: &str = "bench";
/// The memoized functions' cache names, which become the stores' namespaces.
const REDIS_HIT_NAME: &str = "redis_nearby";
const MEMCACHED_HIT_NAME: &str = "memcached_nearby";
/// The generous operation timeout keeps a slow answer on a loaded machine from turning
/// a hit into a (faster, local) computation; the bench also asserts no error happened.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);
/// The key of the timed hits.
const POSTCODE: &str = "EC1A";
const RADIUS: u32 = 5;
/// Keys read by the `get_many` benchmarks.
const MANY: u32 = 100;

type Key = (String, u32);
type Value = Vec<String>;

static REDIS_URL: OnceLock<String> = OnceLock::new();
static MEMCACHED_ADDRESS: OnceLock<String> = OnceLock::new();
static COMPUTED: AtomicUsize = AtomicUsize::new(0);

fn redis_builder() -> RedisStoreBuilder {
    RedisStore::builder(REDIS_URL.get().expect("server started first").as_str())
        .prefix(PREFIX)
        .operation_timeout(OPERATION_TIMEOUT)
}

fn redis_store() -> RedisStore {
    redis_builder().build().expect("a valid Redis URL")
}

fn memcached_pool() -> MemcachedStore {
    MemcachedStore::builder([MEMCACHED_ADDRESS.get().expect("server started first")])
        .prefix(PREFIX)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
        .expect("at least one server")
}

/// About five short strings, the value of every benchmark.
fn nearby(postcode: &str, radius: u32) -> Value {
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    nearby_shops(postcode, radius)
}

#[memoize(name = "redis_nearby", store = redis_store())]
fn redis_nearby(postcode: &str, radius: u32) -> Value {
    nearby(postcode, radius)
}

#[memoize(name = "memcached_nearby", store = memcached_pool())]
fn memcached_nearby(postcode: &str, radius: u32) -> Value {
    nearby(postcode, radius)
}

/// The key bytes `RedisStore` writes: `prefix:namespace:version:` and the MessagePack key.
fn redis_key_bytes(namespace: &str, key: &Key) -> Vec<u8> {
    let mut bytes = format!("{PREFIX}:{namespace}:1:").into_bytes();
    rmp_serde::encode::write(&mut bytes, key).expect("a key encodes");
    bytes
}

/// The key `MemcachedStore` writes: `prefix:namespace:1:v<version>:` and the hex of the
/// MessagePack key (short, printable keys only, so never the MD5 form). The namespace's
/// version is a counter the store keeps on the server and re-reads once a second.
fn memcached_key_text(namespace: &str, version: u64, key: &Key) -> String {
    use std::fmt::Write;
    let mut text = format!("{PREFIX}:{namespace}:1:v{version}:");
    for byte in rmp_serde::to_vec(key).expect("a key encodes") {
        write!(text, "{byte:02x}").expect("writing to a String");
    }
    text
}

fn decode(bytes: &[u8]) -> Value {
    rmp_serde::from_slice(bytes).expect("the stored value decodes")
}

/// Times `timed` with an untimed call of `other` after each one, so that both contenders
/// of a pair run under the same load: on a shared machine the load drifts between the
/// seconds one plain benchmark runs and the next, by more than the 10% compared here.
fn interleaved<A, B>(
    bencher: &mut Bencher<'_>,
    mut timed: impl FnMut() -> A,
    mut other: impl FnMut() -> B,
) {
    bencher.iter_custom(|iterations| {
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            let start = Instant::now();
            black_box(timed());
            total += start.elapsed();
            black_box(other());
        }
        total
    });
}

fn many_keys() -> Vec<Key> {
    (0..MANY).map(|n| (format!("N{n}"), n)).collect()
}

fn fill_many(store: &impl CacheApi<Key, Value>) -> Vec<Key> {
    let keys = many_keys();
    let entries = keys
        .iter()
        .map(|(postcode, radius)| ((postcode.clone(), *radius), nearby(postcode, *radius)))
        .collect();
    store.set_many(entries, None).expect("filled");
    let found = store.get_many(&keys).expect("read back");
    assert!(found.iter().all(Option::is_some), "every key is stored");
    keys
}

/// `get_many` and `set_many` of 100 keys against 100 sequential `get`/`insert` calls on
/// the same store.
fn batched_vs_sequential<S: CacheApi<Key, Value>>(c: &mut Criterion, name: &str, store: &S) {
    let keys = fill_many(store);
    let entries: Vec<(Key, Value)> = keys
        .iter()
        .map(|key| (key.clone(), nearby(&key.0, key.1)))
        .collect();
    let mut group = c.benchmark_group(name);
    group.bench_function("get_many", |b| {
        b.iter(|| store.get_many(black_box(&keys)).unwrap())
    });
    group.bench_function("sequential_get", |b| {
        b.iter(|| {
            black_box(&keys)
                .iter()
                .map(|key| store.get(key).unwrap())
                .collect::<Vec<Option<Value>>>()
        })
    });
    group.bench_function("set_many", |b| {
        b.iter(|| store.set_many(black_box(entries.clone()), None).unwrap())
    });
    group.bench_function("sequential_set", |b| {
        b.iter(|| {
            for (key, value) in black_box(entries.clone()) {
                store.insert(key, value, None).unwrap();
            }
        })
    });
    group.finish();
}

fn redis_benches(c: &mut Criterion) {
    let server = RedisServer::start();
    REDIS_URL.set(server.url()).expect("set once");
    let mut raw = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("a raw connection");
    raw.set_read_timeout(Some(OPERATION_TIMEOUT)).unwrap();
    raw.set_write_timeout(Some(OPERATION_TIMEOUT)).unwrap();

    // The first call computes and stores; everything timed after it is a hit.
    let expected = redis_nearby(POSTCODE, RADIUS);
    let key: Key = (POSTCODE.to_owned(), RADIUS);
    let key_bytes = redis_key_bytes(REDIS_HIT_NAME, &key);
    let stored: Vec<u8> = redis::cmd("GET").arg(&key_bytes).query(&mut raw).unwrap();
    assert_eq!(
        decode(&stored),
        expected,
        "the raw GET reads the store's key"
    );
    let store = redis_builder()
        .namespace(REDIS_HIT_NAME)
        .build()
        .expect("a valid Redis URL");

    let mut group = c.benchmark_group("redis_hit");
    group.bench_function("memoized", |b| {
        b.iter(|| redis_nearby(black_box(POSTCODE), black_box(RADIUS)))
    });
    group.bench_function("store_get", |b| {
        b.iter(|| {
            let found: Option<Value> = store.get(black_box(&key)).unwrap();
            found
        })
    });
    group.bench_function("raw_get_decode", |b| {
        b.iter(|| {
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg(black_box(&key_bytes))
                .query(&mut raw)
                .unwrap();
            decode(&bytes)
        })
    });
    group.bench_function("raw_encode_key_get_decode", |b| {
        b.iter(|| {
            let key: Key = (black_box(POSTCODE).to_owned(), black_box(RADIUS));
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg(redis_key_bytes(REDIS_HIT_NAME, &key))
                .query(&mut raw)
                .unwrap();
            decode(&bytes)
        })
    });
    let memoized = || redis_nearby(black_box(POSTCODE), black_box(RADIUS));
    let raw_get = |raw: &mut redis::Connection| {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(black_box(&key_bytes))
            .query(raw)
            .unwrap();
        decode(&bytes)
    };
    group.bench_function("memoized_interleaved", |b| {
        interleaved(b, memoized, || raw_get(&mut raw))
    });
    group.bench_function("raw_get_decode_interleaved", |b| {
        interleaved(b, || raw_get(&mut raw), memoized)
    });
    group.finish();
    let stats = redis_nearby::stats();
    assert_eq!((stats.misses, stats.errors), (1, 0), "only hits were timed");

    let store = redis_builder()
        .namespace("many")
        .build()
        .expect("a valid Redis URL");
    batched_vs_sequential(c, "redis_batch_100", &store);
    drop(server);
}

fn memcached_benches(c: &mut Criterion) {
    let server = MemcachedServer::start();
    MEMCACHED_ADDRESS.set(server.address()).expect("set once");
    // The same URL options and pool as `MemcachedStore` uses for its client.
    let raw = memcache::Client::builder()
        .add_server(format!(
            "memcache://{}?timeout={}&tcp_nodelay=true",
            server.address(),
            OPERATION_TIMEOUT.as_secs_f64()
        ))
        .and_then(|builder| builder.with_max_pool_size(4).with_min_idle_conns(1).build())
        .expect("a raw client");

    let expected = memcached_nearby(POSTCODE, RADIUS);
    let key: Key = (POSTCODE.to_owned(), RADIUS);
    let version: u64 = raw
        .get(&format!("{PREFIX}:{MEMCACHED_HIT_NAME}:version"))
        .unwrap()
        .expect("the store created its namespace version");
    let key_text = memcached_key_text(MEMCACHED_HIT_NAME, version, &key);
    let stored: Vec<u8> = raw
        .get(&key_text)
        .unwrap()
        .expect("stored by the macro under the key derived here; did the key layout change?");
    assert_eq!(
        decode(&stored),
        expected,
        "the raw get reads the store's key"
    );
    let store = MemcachedStore::builder([server.address()])
        .prefix(PREFIX)
        .namespace(MEMCACHED_HIT_NAME)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
        .expect("at least one server");

    let mut group = c.benchmark_group("memcached_hit");
    group.bench_function("memoized", |b| {
        b.iter(|| memcached_nearby(black_box(POSTCODE), black_box(RADIUS)))
    });
    group.bench_function("store_get", |b| {
        b.iter(|| {
            let found: Option<Value> = store.get(black_box(&key)).unwrap();
            found
        })
    });
    group.bench_function("raw_get_decode", |b| {
        b.iter(|| {
            let bytes: Vec<u8> = raw.get(black_box(&key_text)).unwrap().unwrap();
            decode(&bytes)
        })
    });
    group.bench_function("raw_encode_key_get_decode", |b| {
        b.iter(|| {
            let key: Key = (black_box(POSTCODE).to_owned(), black_box(RADIUS));
            let bytes: Vec<u8> = raw
                .get(&memcached_key_text(MEMCACHED_HIT_NAME, version, &key))
                .unwrap()
                .unwrap();
            decode(&bytes)
        })
    });
    let memoized = || memcached_nearby(black_box(POSTCODE), black_box(RADIUS));
    let raw_get = || {
        let bytes: Vec<u8> = raw.get(black_box(&key_text)).unwrap().unwrap();
        decode(&bytes)
    };
    group.bench_function("memoized_interleaved", |b| {
        interleaved(b, memoized, raw_get)
    });
    group.bench_function("raw_get_decode_interleaved", |b| {
        interleaved(b, raw_get, memoized)
    });
    group.finish();
    let stats = memcached_nearby::stats();
    assert_eq!((stats.misses, stats.errors), (1, 0), "only hits were timed");

    let store = MemcachedStore::builder([server.address()])
        .prefix(PREFIX)
        .namespace("many")
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
        .expect("at least one server");
    batched_vs_sequential(c, "memcached_batch_100", &store);
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = redis_benches, memcached_benches
}
criterion_main!(benches);
