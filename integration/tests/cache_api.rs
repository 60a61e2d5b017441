//! The low-level cache API (`CacheApi`) against real Redis and memcached servers: a
//! hit counter that must not lose increments when two requests read 10 and both write
//! 11, compare-and-set, and the batched and conditional calls.

#![cfg(all(feature = "redis", feature = "memcached"))]

use std::sync::Arc;
use std::time::Duration;

use cachemacro_runtime::{CacheApi, MemcachedStore, RedisStore};
use cachemacro_test_support::{MemcachedServer, RedisServer};

const THREADS: usize = 8;

fn redis_client(server: &RedisServer) -> RedisStore {
    RedisStore::builder(server.url())
        .namespace("api")
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn memcached_client(server: &MemcachedServer) -> MemcachedStore {
    MemcachedStore::builder([server.address()])
        .namespace("api")
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Runs `per_thread` on `THREADS` threads released together, each with its own client
/// (as separate application processes would have; `app_instances.rs` races real ones).
fn race<S: Sync>(clients: impl Fn() -> S, per_thread: impl Fn(&S) + Sync) {
    let clients: Vec<S> = (0..THREADS).map(|_| clients()).collect();
    cachemacro_test_support::race(THREADS, |thread| per_thread(&clients[thread]));
}

fn counter<S: CacheApi<String, i64>>(store: &S) -> i64 {
    store.get(&"hit_count".to_owned()).unwrap().unwrap_or(0)
}

fn incr_never_loses_a_hit<S: CacheApi<String, i64> + Send + 'static>(clients: impl Fn() -> S) {
    race(&clients, |store| {
        for _ in 0..10_000 {
            store.incr(&"hit_count".to_owned(), 1).unwrap();
        }
    });
    assert_eq!(counter(&clients()), 80_000);
}

/// 8 x 2 000 read-modify-writes retried on conflict. Every lost race costs two more round
/// trips, so this runs fewer than the incr test's 10 000 a thread. The threads still
/// collide: the naive control below, at 1 000 a thread, always loses hits.
fn cas_loop_never_loses_a_hit<S: CacheApi<String, i64> + Send + 'static>(
    clients: impl Fn() -> S,
    per_thread: i64,
) {
    race(&clients, move |store| {
        let key = "hit_count".to_owned();
        for _ in 0..per_thread {
            loop {
                let (seen, token) = match store.gets(&key).unwrap() {
                    Some(found) => found,
                    None => (0, store.absent_token()),
                };
                if store.cas(key.clone(), seen + 1, &token, None).unwrap() {
                    break;
                }
            }
        }
    });
    assert_eq!(counter(&clients()), THREADS as i64 * per_thread);
}

fn naive_get_then_set_loses_hits<S: CacheApi<String, i64> + Send + 'static>(
    clients: impl Fn() -> S,
) {
    race(&clients, |store| {
        let key = "hit_count".to_owned();
        for _ in 0..1_000 {
            let seen = store.get(&key).unwrap().unwrap_or(0);
            store.insert(key.clone(), seen + 1, None).unwrap();
        }
    });
    // Two requests read 10 and both write 11: the article's race, reproduced.
    assert!(
        counter(&clients()) < 8_000,
        "the race should have lost increments"
    );
}

fn conditional_and_batched_calls<S: CacheApi<String, i64>>(store: &S) {
    let key = |name: &str| name.to_owned();
    assert!(store.add(key("a"), 1, None).unwrap());
    assert!(!store.add(key("a"), 2, None).unwrap());
    assert_eq!(store.get(&key("a")).unwrap(), Some(1));
    assert_eq!(store.get_or_set(key("a"), || 9, None).unwrap(), 1);
    assert_eq!(store.get_or_set(key("b"), || 9, None).unwrap(), 9);

    store
        .set_many(vec![(key("c"), 3), (key("d"), 4)], None)
        .unwrap();
    assert_eq!(
        store
            .get_many(&[key("a"), key("missing"), key("c"), key("d")])
            .unwrap(),
        vec![Some(1), None, Some(3), Some(4)]
    );
    assert_eq!(
        store
            .delete_many(&[key("c"), key("d"), key("missing")])
            .unwrap(),
        2
    );
    assert_eq!(store.get(&key("c")).unwrap(), None);

    assert_eq!(store.incr(&key("n"), 5).unwrap(), 5);
    assert_eq!(store.decr(&key("n"), 2).unwrap(), 3);
    assert_eq!(store.get(&key("n")).unwrap(), Some(3));

    assert!(store
        .touch(&key("a"), Some(Duration::from_secs(60)))
        .unwrap());
    assert!(!store
        .touch(&key("missing"), Some(Duration::from_secs(60)))
        .unwrap());

    let (value, token) = store.gets(&key("a")).unwrap().unwrap();
    assert_eq!(value, 1);
    assert!(store.cas(key("a"), 10, &token, None).unwrap());
    assert!(
        !store.cas(key("a"), 20, &token, None).unwrap(),
        "a stale token must fail"
    );
    assert_eq!(store.get(&key("a")).unwrap(), Some(10));
    assert!(store
        .cas(key("fresh"), 1, &store.absent_token(), None)
        .unwrap());
    assert!(!store
        .cas(key("fresh"), 2, &store.absent_token(), None)
        .unwrap());
}

/// Django's versions: `incr_version` moves one entry to the next version, where only a
/// store built at that version sees it; `clear` removes every version of the namespace.
fn versions_move_entries_out_of_sight<S: CacheApi<String, i64>>(at_version: impl Fn(u64) -> S) {
    let (one, two, three) = (at_version(1), at_version(2), at_version(3));
    let key = |name: &str| name.to_owned();
    one.insert(key("a"), 10, Some(Duration::from_secs(60)))
        .unwrap();
    one.insert(key("b"), 20, None).unwrap();
    assert_eq!(
        two.get(&key("a")).unwrap(),
        None,
        "versions do not share entries"
    );

    assert_eq!(one.incr_version(&key("a"), 1).unwrap(), Some(2));
    assert_eq!(one.get(&key("a")).unwrap(), None);
    assert_eq!(two.get(&key("a")).unwrap(), Some(10));
    assert_eq!(
        one.get(&key("b")).unwrap(),
        Some(20),
        "only the named key moved"
    );
    assert_eq!(one.incr_version(&key("missing"), 1).unwrap(), None);
    assert_eq!(two.incr_version(&key("a"), -1).unwrap(), Some(1));
    assert_eq!(one.get(&key("a")).unwrap(), Some(10));
    assert!(
        one.incr_version(&key("a"), -2).is_err(),
        "no version below 0"
    );

    two.insert(key("c"), 30, None).unwrap();
    three.insert(key("d"), 40, None).unwrap();
    one.clear().unwrap();
    for (store, name) in [(&one, "a"), (&one, "b"), (&two, "c"), (&three, "d")] {
        assert_eq!(
            store.get(&key(name)).unwrap(),
            None,
            "{name} survived clear"
        );
    }
}

#[test]
fn redis_versions_move_entries_out_of_sight() {
    let server = RedisServer::start();
    versions_move_entries_out_of_sight(|version| {
        RedisStore::builder(server.url())
            .namespace("api")
            .version(version)
            .build()
            .unwrap()
    });
}

#[test]
fn memcached_versions_move_entries_out_of_sight() {
    let server = MemcachedServer::start();
    versions_move_entries_out_of_sight(|version| {
        MemcachedStore::builder([server.address()])
            .namespace("api")
            .version(version)
            .version_refresh(Duration::ZERO)
            .build()
            .unwrap()
    });
}

#[test]
fn redis_hit_counter_with_incr_is_exact() {
    let server = RedisServer::start();
    incr_never_loses_a_hit(|| redis_client(&server));
}

#[test]
fn redis_hit_counter_with_a_cas_loop_is_exact() {
    let server = RedisServer::start();
    cas_loop_never_loses_a_hit(|| redis_client(&server), 2_000);
}

#[test]
fn redis_naive_counter_loses_hits() {
    let server = RedisServer::start();
    naive_get_then_set_loses_hits(|| redis_client(&server));
}

#[test]
fn redis_conditional_and_batched_calls() {
    let server = RedisServer::start();
    conditional_and_batched_calls(&redis_client(&server));
}

#[test]
fn memcached_hit_counter_with_incr_is_exact() {
    let server = MemcachedServer::start();
    incr_never_loses_a_hit(|| memcached_client(&server));
}

#[test]
fn memcached_hit_counter_with_a_cas_loop_is_exact() {
    let server = MemcachedServer::start();
    cas_loop_never_loses_a_hit(|| memcached_client(&server), 2_000);
}

#[test]
fn memcached_naive_counter_loses_hits() {
    let server = MemcachedServer::start();
    naive_get_then_set_loses_hits(|| memcached_client(&server));
}

#[test]
fn memcached_conditional_and_batched_calls() {
    let server = MemcachedServer::start();
    conditional_and_batched_calls(&memcached_client(&server));
}

/// The async API on a multi-threaded runtime: 8 tasks x 1 000 `incr_async` and a
/// `gets_async`/`cas_async` loop stay exact, and the conditional and batched calls
/// answer as their sync twins do.
async fn async_api_is_exact<S>(store: Arc<S>)
where
    S: CacheApi<String, i64> + Send + Sync + 'static,
{
    let key = || "async_hits".to_owned();
    let tasks: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..1_000 {
                    store.incr_async(&key(), 1).await.unwrap();
                }
                for _ in 0..100 {
                    loop {
                        let (seen, token) = match store.gets_async(&key()).await.unwrap() {
                            Some(found) => found,
                            None => (0, store.absent_token()),
                        };
                        if store
                            .cas_async(key(), seen + 1, &token, None)
                            .await
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get_async(&key()).await.unwrap(), Some(8 * 1_100));
    assert_eq!(
        store.decr_async(&key(), 100).await.unwrap(),
        8 * 1_100 - 100
    );

    let name = |n: u32| format!("batch{n}");
    assert!(store.add_async(name(0), 1, None).await.unwrap());
    assert!(!store.add_async(name(0), 2, None).await.unwrap());
    assert!(store
        .touch_async(&name(0), Some(Duration::from_secs(60)))
        .await
        .unwrap());
    assert!(!store.touch_async(&name(99), None).await.unwrap());
    store
        .set_many_async(
            (1..=3).map(|n| (name(n), i64::from(n) * 10)).collect(),
            None,
        )
        .await
        .unwrap();
    let keys: Vec<String> = (0..=4).map(name).collect();
    assert_eq!(
        store.get_many_async(&keys).await.unwrap(),
        vec![Some(1), Some(10), Some(20), Some(30), None]
    );
    assert_eq!(store.delete_many_async(&keys).await.unwrap(), 4);
    assert_eq!(store.get_many_async(&keys).await.unwrap(), vec![None; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_async_api_is_exact() {
    let server = RedisServer::start();
    async_api_is_exact(Arc::new(redis_client(&server))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memcached_async_api_is_exact() {
    let server = MemcachedServer::start();
    async_api_is_exact(Arc::new(memcached_client(&server))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_async_api_is_exact() {
    async_api_is_exact(Arc::new(cachemacro_runtime::MemoryStore::new())).await;
}

/// `incr_existing` is Django's `incr`: a missing counter is not created.
fn incr_existing_never_creates<S: CacheApi<String, i64>>(store: &S) {
    let key = || "existing_hits".to_owned();
    assert_eq!(store.incr_existing(&key(), 1).unwrap(), None);
    assert_eq!(store.get(&key()).unwrap(), None, "nothing was created");
    store.insert(key(), 10, None).unwrap();
    assert_eq!(store.incr_existing(&key(), 5).unwrap(), Some(15));
    assert_eq!(store.incr_existing(&key(), -3).unwrap(), Some(12));
    assert_eq!(store.get(&key()).unwrap(), Some(12));
    store.remove(&key()).unwrap();
    assert_eq!(store.incr_existing(&key(), 1).unwrap(), None);
}

#[test]
fn redis_incr_existing_never_creates() {
    let server = RedisServer::start();
    incr_existing_never_creates(&redis_client(&server));
}

#[test]
fn memcached_incr_existing_never_creates() {
    let server = MemcachedServer::start();
    incr_existing_never_creates(&memcached_client(&server));
}

#[test]
fn memory_incr_existing_never_creates() {
    incr_existing_never_creates(&cachemacro_runtime::MemoryStore::new());
}
