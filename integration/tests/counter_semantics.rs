//! One meaning per counter call on every store: the same script of `incr`, `decr`,
//! `incr_existing` and overflows gives the same answers on the in-process store, Redis,
//! memcached, the disk store and PostgreSQL. Counters are signed 64-bit integers; an
//! overflow is `StoreError::Overflow` and leaves the counter as it was.

#![cfg(all(
    feature = "redis",
    feature = "memcached",
    feature = "disk",
    feature = "postgres"
))]

use cachemacro_runtime::{
    CacheApi, DiskStore, MemcachedStore, MemoryStore, RedisStore, SqlStore, StoreError,
};
use cachemacro_test_support::postgres::PostgresServer;
use cachemacro_test_support::{MemcachedServer, RedisServer};

/// Each step's answer, in a form every store's answers can be compared in.
fn outcome<T: std::fmt::Debug>(answer: Result<T, StoreError>) -> String {
    match answer {
        Ok(value) => format!("{value:?}"),
        Err(StoreError::Overflow) => "Overflow".to_owned(),
        Err(other) => format!("unexpected error: {other}"),
    }
}

/// The script: plain counting across zero, counters created by a negative step, the
/// create-on-missing option, and both ends of `i64`.
fn script<S: CacheApi<String, i64>>(store: &S) -> Vec<String> {
    let key = |name: &str| name.to_owned();
    vec![
        outcome(store.incr(&key("hits"), 1)),
        outcome(store.incr(&key("hits"), 4)),
        outcome(store.decr(&key("hits"), 10)),
        outcome(store.incr(&key("hits"), -3)),
        outcome(store.get(&key("hits"))),
        outcome(store.incr(&key("fresh"), -3)),
        outcome(store.incr_existing(&key("missing"), 1)),
        outcome(store.get(&key("missing"))),
        outcome(store.incr_existing(&key("fresh"), 5)),
        outcome(store.insert(key("top"), i64::MAX - 1, None)),
        outcome(store.incr(&key("top"), 1)),
        outcome(store.incr(&key("top"), 1)),
        outcome(store.get(&key("top"))),
        outcome(store.insert(key("bottom"), i64::MIN + 1, None)),
        outcome(store.decr(&key("bottom"), 1)),
        outcome(store.decr(&key("bottom"), 1)),
        outcome(store.get(&key("bottom"))),
        outcome(store.decr(&key("zero"), i64::MIN)),
    ]
}

fn expected() -> Vec<String> {
    [
        "1",
        "5",
        "-5",
        "-8",
        "Some(-8)",
        "-3",
        "None",
        "None",
        "Some(2)",
        "()",
        "9223372036854775807",
        "Overflow",
        "Some(9223372036854775807)",
        "()",
        "-9223372036854775808",
        "Overflow",
        "Some(-9223372036854775808)",
        "Overflow",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn every_store_counts_the_same_way() {
    let redis_server = RedisServer::start();
    let memcached_server = MemcachedServer::start();
    let postgres_server = PostgresServer::start();
    let disk_dir = std::env::temp_dir().join(format!("cachemacro-counters-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&disk_dir);

    let memory: MemoryStore<String, i64> = MemoryStore::new();
    let redis = RedisStore::builder(redis_server.url())
        .namespace("counters")
        .build()
        .unwrap();
    let memcached = MemcachedStore::builder([memcached_server.address()])
        .namespace("counters")
        .build()
        .unwrap();
    let disk = DiskStore::builder(&disk_dir)
        .namespace("counters")
        .build()
        .unwrap();
    let sql = SqlStore::builder(postgres_server.url())
        .create_table(true)
        .namespace("counters")
        .operation_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();

    let answers = [
        ("memory", script(&memory)),
        ("redis", script(&redis)),
        ("memcached", script(&memcached)),
        ("disk", script(&disk)),
        ("postgres", script(&sql)),
    ];
    for (store, answer) in &answers {
        assert_eq!(answer, &expected(), "{store} counts differently");
    }
    let _ = std::fs::remove_dir_all(&disk_dir);
}
