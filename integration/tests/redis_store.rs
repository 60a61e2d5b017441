//! `RedisStore` against a real `redis-server` started by the test itself.

#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use cachemacro_runtime::{memoize, RedisStore, Store};
use cachemacro_test_support::{free_port, race, RedisCluster, RedisServer};

fn store_at(url: &OnceLock<String>) -> RedisStore {
    RedisStore::builder(url.get().expect("test sets the URL first").as_str())
        .prefix("tests")
        .retry_after(Duration::from_millis(100))
        .build()
        .expect("valid URL")
}

fn raw_connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

static SHARED_URL: OnceLock<String> = OnceLock::new();
static SHARED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "1h", name = "shared", store = store_at(&SHARED_URL))]
fn shared_lookup(postcode: &str, radius: u32) -> Vec<String> {
    SHARED_CALLS.fetch_add(1, Ordering::SeqCst);
    vec![format!("{postcode}/{radius}")]
}

#[test]
fn entries_live_in_redis_and_are_shared_by_every_client() {
    let server = RedisServer::start();
    SHARED_URL.set(server.url()).unwrap();

    assert_eq!(shared_lookup("EC1", 15), vec!["EC1/15".to_owned()]);
    assert_eq!(shared_lookup("EC1", 15), vec!["EC1/15".to_owned()]);
    assert_eq!(shared_lookup("EC11", 5), vec!["EC11/5".to_owned()]);
    assert_eq!(SHARED_CALLS.load(Ordering::SeqCst), 2);

    // Another client (another process, in production) reads the same entry.
    let other = RedisStore::builder(server.url())
        .prefix("tests")
        .namespace("shared")
        .build()
        .unwrap();
    let found: Option<Vec<String>> = other.get(&("EC1".to_owned(), 15u32)).unwrap();
    assert_eq!(found, Some(vec!["EC1/15".to_owned()]));

    // TTL is set with the entry.
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("tests:shared:*")
        .query(&mut raw_connection(&server))
        .unwrap();
    assert_eq!(keys.len(), 2);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query(&mut raw_connection(&server))
        .unwrap();
    assert!(
        ttl_ms > 3_500_000 && ttl_ms <= 3_600_000,
        "PTTL was {ttl_ms}"
    );

    assert!(shared_lookup::invalidate("EC1", 15));
    assert!(!shared_lookup::invalidate("EC1", 15));
    shared_lookup::clear();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("tests:shared:*")
        .query(&mut raw_connection(&server))
        .unwrap();
    assert!(keys.is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_share_one_computation_through_redis() {
    let server = RedisServer::start();
    ASYNC_URL.set(server.url()).unwrap();
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
    assert_eq!(ASYNC_CALLS.load(Ordering::SeqCst), 1);
    let stats = page::stats();
    assert_eq!((stats.misses, stats.hits, stats.errors), (1, 8, 0));
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
    let server = RedisServer::start();
    CORRUPT_URL.set(server.url()).unwrap();
    assert_eq!(decoded(7), (7, "7".to_owned()));
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("tests:corrupt:*")
        .query(&mut raw_connection(&server))
        .unwrap();
    assert_eq!(keys.len(), 1);
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(b"\xc1 not messagepack".as_slice())
        .query(&mut raw_connection(&server))
        .unwrap();

    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(CORRUPT_CALLS.load(Ordering::SeqCst), 2);
    // The recomputed value replaced the garbage: the next call hits.
    assert_eq!(decoded(7), (7, "7".to_owned()));
    assert_eq!(CORRUPT_CALLS.load(Ordering::SeqCst), 2);
    let stats = decoded::stats();
    assert!(stats.errors >= 1, "the corrupt read is counted: {stats:?}");
    assert_eq!(stats.hits, 1);
}

static OUTAGE_URL: OnceLock<String> = OnceLock::new();
static OUTAGE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(name = "outage", store = store_at(&OUTAGE_URL))]
fn through_outage(n: u32) -> u32 {
    OUTAGE_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[test]
fn a_dead_server_never_fails_callers_and_hits_resume_after_restart() {
    let mut server = RedisServer::start();
    OUTAGE_URL.set(server.url()).unwrap();
    assert_eq!(through_outage(1), 2);
    assert_eq!(through_outage(1), 2);
    assert_eq!(OUTAGE_CALLS.load(Ordering::SeqCst), 1);

    server.kill();
    for _ in 0..5 {
        assert_eq!(through_outage(1), 2);
    }
    assert_eq!(OUTAGE_CALLS.load(Ordering::SeqCst), 6);
    assert!(through_outage::stats().errors >= 5);

    server.restart(); // empty: nothing was persisted
    thread::sleep(Duration::from_millis(250)); // past retry_after
    assert_eq!(through_outage(1), 2);
    let computed = OUTAGE_CALLS.load(Ordering::SeqCst);
    assert_eq!(through_outage(1), 2);
    assert_eq!(through_outage(1), 2);
    assert_eq!(
        OUTAGE_CALLS.load(Ordering::SeqCst),
        computed,
        "hits resumed after the restart"
    );
}

static EXPIRY_URL: OnceLock<String> = OnceLock::new();
static EXPIRY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "200ms", name = "expiry", store = store_at(&EXPIRY_URL))]
fn short_lived(n: u32) -> u32 {
    EXPIRY_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn redis_expires_entries_after_the_ttl() {
    let server = RedisServer::start();
    EXPIRY_URL.set(server.url()).unwrap();
    short_lived(1);
    short_lived(1);
    assert_eq!(EXPIRY_CALLS.load(Ordering::SeqCst), 1);
    thread::sleep(Duration::from_millis(600));
    short_lived(1);
    assert_eq!(EXPIRY_CALLS.load(Ordering::SeqCst), 2);
}

#[test]
fn a_server_that_is_not_there_is_an_error_not_a_panic() {
    let store = RedisStore::builder(format!("redis://127.0.0.1:{}/", free_port()))
        .build()
        .unwrap();
    assert!(Store::<u32, u32>::get(&store, &1).is_err());
    assert!(Store::<u32, u32>::insert(&store, 1, 1, None).is_err());
    assert!(Store::<u32, u32>::remove(&store, &1).is_err());
    assert!(RedisStore::new("not a url").is_err());
}

static CLUSTER_URLS: OnceLock<Vec<String>> = OnceLock::new();
static CLUSTER_CALLS: AtomicUsize = AtomicUsize::new(0);

fn cluster_store() -> RedisStore {
    RedisStore::cluster(CLUSTER_URLS.get().expect("cluster started first").clone())
        .prefix("tests")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[memoize(name = "clustered", store = cluster_store())]
fn clustered(id: u32) -> String {
    CLUSTER_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("book {id}")
}

#[test]
fn a_redis_cluster_spreads_entries_over_its_nodes_and_any_client_hits() {
    let cluster = RedisCluster::start();
    CLUSTER_URLS.set(cluster.urls()).unwrap();
    for id in 0..200 {
        assert_eq!(clustered(id), format!("book {id}"));
    }
    for id in 0..200 {
        assert_eq!(clustered(id), format!("book {id}"));
    }
    assert_eq!(CLUSTER_CALLS.load(Ordering::SeqCst), 200);
    assert_eq!(clustered::stats().errors, 0);

    // The entries landed on every node, each holding only its own slots' keys.
    let per_node: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|node| node.cli(&["dbsize"]).trim().parse().unwrap())
        .collect();
    assert_eq!(per_node.iter().sum::<u64>(), 200, "{per_node:?}");
    assert!(per_node.iter().all(|&count| count > 0), "{per_node:?}");

    // A client that only knows the last node still finds every entry.
    let other = RedisStore::cluster([cluster.urls()[2].clone()])
        .prefix("tests")
        .namespace("clustered")
        .build()
        .unwrap();
    for id in [0u32, 77, 199] {
        let found: Option<String> = other.get(&(id,)).unwrap();
        assert_eq!(found, Some(format!("book {id}")));
    }

    clustered::clear();
    let left: u64 = cluster
        .nodes
        .iter()
        .map(|node| node.cli(&["dbsize"]).trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(left, 0);
}

/// Values as JSON, to show the codec is the user's choice.
#[derive(Debug, Clone, Copy)]
struct Json;

impl cachemacro_runtime::Codec for Json {
    fn encode<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
    ) -> Result<Vec<u8>, cachemacro_runtime::StoreError> {
        serde_json::to_vec(value)
            .map_err(|error| cachemacro_runtime::StoreError::Other(error.into()))
    }

    fn decode<V: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<V, cachemacro_runtime::StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|error| cachemacro_runtime::StoreError::Corrupt(error.to_string()))
    }
}

#[test]
fn a_store_writes_values_with_the_codec_it_was_given() {
    use cachemacro_runtime::{CacheApi, StoreError};

    let server = RedisServer::start();
    let json = RedisStore::builder(server.url())
        .prefix("codec")
        .namespace("shops")
        .codec(Json)
        .build()
        .unwrap();
    let shops = ("EC1A 1BB".to_owned(), vec!["Highbury".to_owned()]);
    json.insert("near".to_owned(), shops.clone(), None).unwrap();
    assert_eq!(json.get(&"near".to_owned()).unwrap(), Some(shops.clone()));

    // The bytes on the server are the codec's, under the usual key.
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("codec:shops:1:*")
        .query(&mut raw_connection(&server))
        .unwrap();
    assert_eq!(keys.len(), 1);
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query(&mut raw_connection(&server))
        .unwrap();
    assert_eq!(raw, br#"["EC1A 1BB",["Highbury"]]"#);

    // Counters stay decimal text whatever the codec, so the server's INCRBY works.
    assert_eq!(
        CacheApi::<String, i64>::incr(&json, &"hits".to_owned(), 5).unwrap(),
        5
    );
    assert_eq!(
        Store::<String, i64>::get(&json, &"hits".to_owned()).unwrap(),
        Some(5)
    );

    // A MessagePack store reading the JSON entry sees corrupt bytes, not a panic.
    let packed = RedisStore::builder(server.url())
        .prefix("codec")
        .namespace("shops")
        .build()
        .unwrap();
    assert!(matches!(
        Store::<String, (String, Vec<String>)>::get(&packed, &"near".to_owned()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn sync_callers_on_many_threads_share_a_bounded_pool_of_connections() {
    let server = RedisServer::start();
    let store = Arc::new(
        RedisStore::builder(server.url())
            .pool_size(3)
            .operation_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    Store::<u32, u32>::insert(&*store, 1, 10, None).unwrap();
    race(8, |_| {
        for _ in 0..300 {
            assert_eq!(Store::<u32, u32>::get(&*store, &1).unwrap(), Some(10));
        }
    });

    // Connected clients besides the one asking: the pool opened more than one
    // connection for the racing threads, and never more than its size.
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut raw_connection(&server))
        .unwrap();
    let connected: usize = info
        .lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        (2..=3).contains(&(connected - 1)),
        "{connected} clients connected"
    );
}
