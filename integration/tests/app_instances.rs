//! Several instances of one application over a shared store, each instance a real
//! process: this test binary started again per instance (`instance_entry` selected, see
//! `cachemacro_test_support::instances`), against real Redis, memcached and PostgreSQL
//! servers. What one instance memoized is a hit in another; an invalidation in one is
//! seen by every other; four instances bumping the bookshop's hit counter at once lose
//! no hit; and a page one instance rendered is served by another until a form post there
//! changes it.

#![cfg(all(
    feature = "axum",
    feature = "redis",
    feature = "memcached",
    feature = "postgres"
))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{
    memoize, CacheApi, CacheStats, MemcachedStore, PageCacheLayer, RedisStore, SqlStore, Store,
};
use cachemacro_test_support::instances::{self, Instance};
use cachemacro_test_support::postgres::PostgresServer;
use cachemacro_test_support::{nearby_shops, MemcachedServer, RedisServer};
use tower::ServiceExt;

/// The setting that tells an instance which backend to use, and where it is.
const BACKEND: &str = "CACHEMACRO_INSTANCE_BACKEND";
const ADDRESS: &str = "CACHEMACRO_INSTANCE_ADDRESS";

/// How many instances race on the hit counter, and how many hits each counts.
const COUNTERS: usize = 4;
const HITS_EACH: i64 = 300;

/// The instance entry: what a child does; a no-op in a normal test run.
#[test]
fn instance_entry() {
    let Some(role) = instances::role() else {
        return;
    };
    let backend = Backend::named(&instances::setting(BACKEND));
    let address = instances::setting(ADDRESS);
    match role.as_str() {
        "read_then_invalidate" => {
            backend.memoized_address().set(address).unwrap();
            read_then_invalidate(backend)
        }
        "count_hits" => count_hits(&Counter::open(backend, &address)),
        "browse_then_post" => browse_then_post(&address),
        other => panic!("unknown role {other}"),
    }
}

fn start(role: &str, backend: Backend, address: &str) -> Instance {
    Instance::start(
        "instance_entry",
        role,
        &[(BACKEND, backend.name()), (ADDRESS, address)],
    )
}

// --- the backends -----------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Backend {
    Redis,
    Memcached,
    Postgres,
}

static REDIS_ADDRESS: OnceLock<String> = OnceLock::new();
static MEMCACHED_ADDRESS: OnceLock<String> = OnceLock::new();
static POSTGRES_ADDRESS: OnceLock<String> = OnceLock::new();

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Memcached => "memcached",
            Backend::Postgres => "postgres",
        }
    }

    fn named(name: &str) -> Backend {
        [Backend::Redis, Backend::Memcached, Backend::Postgres]
            .into_iter()
            .find(|backend| backend.name() == name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// Where the memoized functions' store of the backend connects (`#[memoize]` builds
    /// it from a static): set once, by the test in the parent and by `instance_entry` in
    /// a child.
    fn memoized_address(self) -> &'static OnceLock<String> {
        match self {
            Backend::Redis => &REDIS_ADDRESS,
            Backend::Memcached => &MEMCACHED_ADDRESS,
            Backend::Postgres => &POSTGRES_ADDRESS,
        }
    }

    fn memoized_store_address(self) -> &'static str {
        self.memoized_address()
            .get()
            .expect("the address is set first")
    }
}

// Generous timeouts: two cores run every instance, and a timed-out read would turn a hit
// into a computation.
fn redis_store(address: &str) -> RedisStore {
    RedisStore::builder(address)
        .prefix("instances")
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn memcached_store(address: &str) -> MemcachedStore {
    MemcachedStore::builder([address])
        .prefix("instances")
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn postgres_store(address: &str) -> SqlStore {
    SqlStore::builder(address)
        .prefix("instances")
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(5))
        .create_table(true)
        .build()
        .unwrap()
}

// --- a memoized result, across instances --------------------------------------------------

/// The body's runs in this process, per backend.
static CALLS: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

fn nearby_shops_counted(backend: Backend, postcode: &str, radius: u32) -> Vec<String> {
    CALLS[backend as usize].fetch_add(1, Ordering::SeqCst);
    nearby_shops(postcode, radius)
}

#[memoize(ttl = "1h", store = redis_store(Backend::Redis.memoized_store_address()))]
fn nearby_stores_redis(postcode: &str, radius: u32) -> Vec<String> {
    nearby_shops_counted(Backend::Redis, postcode, radius)
}

#[memoize(ttl = "1h", store = memcached_store(Backend::Memcached.memoized_store_address()))]
fn nearby_stores_memcached(postcode: &str, radius: u32) -> Vec<String> {
    nearby_shops_counted(Backend::Memcached, postcode, radius)
}

#[memoize(ttl = "1h", store = postgres_store(Backend::Postgres.memoized_store_address()))]
fn nearby_stores_postgres(postcode: &str, radius: u32) -> Vec<String> {
    nearby_shops_counted(Backend::Postgres, postcode, radius)
}

/// `nearby_stores` memoized on `backend`: the bookstore's "stores near a postcode", the
/// costly lookup every instance would otherwise repeat.
fn nearby_stores(backend: Backend, postcode: &str, radius: u32) -> Vec<String> {
    match backend {
        Backend::Redis => nearby_stores_redis(postcode, radius),
        Backend::Memcached => nearby_stores_memcached(postcode, radius),
        Backend::Postgres => nearby_stores_postgres(postcode, radius),
    }
}

fn invalidate(backend: Backend, postcode: &str, radius: u32) -> bool {
    match backend {
        Backend::Redis => nearby_stores_redis::invalidate(postcode, radius),
        Backend::Memcached => nearby_stores_memcached::invalidate(postcode, radius),
        Backend::Postgres => nearby_stores_postgres::invalidate(postcode, radius),
    }
}

fn stats(backend: Backend) -> CacheStats {
    match backend {
        Backend::Redis => nearby_stores_redis::stats(),
        Backend::Memcached => nearby_stores_memcached::stats(),
        Backend::Postgres => nearby_stores_postgres::stats(),
    }
}

/// In an instance: the lookup another instance computed, then its invalidation.
fn read_then_invalidate(backend: Backend) {
    let shops = nearby_stores(backend, "EC1A 1BB", 5);
    instances::report("same_answer", shops == nearby_shops("EC1A 1BB", 5));
    instances::report("calls", CALLS[backend as usize].load(Ordering::SeqCst));
    let stats = stats(backend);
    instances::report("hits", stats.hits);
    instances::report("errors", stats.errors);
    instances::report("invalidated", invalidate(backend, "EC1A 1BB", 5));
}

fn memoized_across_instances(backend: Backend, address: String) {
    backend.memoized_address().set(address.clone()).unwrap();
    let calls = || CALLS[backend as usize].load(Ordering::SeqCst);
    assert_eq!(
        nearby_stores(backend, "EC1A 1BB", 5),
        nearby_shops("EC1A 1BB", 5)
    );
    assert_eq!(calls(), 1, "the first instance computes");

    let mut other = start("read_then_invalidate", backend, &address);
    assert_eq!(other.expect("same_answer"), "true");
    assert_eq!(
        other.expect("calls"),
        "0",
        "the other instance reads the result"
    );
    assert_eq!(other.expect("hits"), "1");
    assert_eq!(other.expect("errors"), "0");
    assert_eq!(other.expect("invalidated"), "true");
    other.finish();

    // The other instance's invalidation reached this one: the lookup runs again.
    assert_eq!(
        nearby_stores(backend, "EC1A 1BB", 5),
        nearby_shops("EC1A 1BB", 5)
    );
    assert_eq!(calls(), 2, "the invalidated result is computed again");
    let stats = stats(backend);
    assert_eq!((stats.hits, stats.misses, stats.errors), (0, 2, 0));
}

#[test]
fn redis_a_result_memoized_by_one_instance_is_a_hit_in_another_and_invalidated_for_all() {
    let server = RedisServer::start();
    memoized_across_instances(Backend::Redis, server.url());
}

#[test]
fn memcached_a_result_memoized_by_one_instance_is_a_hit_in_another_and_invalidated_for_all() {
    let server = MemcachedServer::start();
    memoized_across_instances(Backend::Memcached, server.address());
}

#[test]
fn postgres_a_result_memoized_by_one_instance_is_a_hit_in_another_and_invalidated_for_all() {
    let server = PostgresServer::start();
    memoized_across_instances(Backend::Postgres, server.url());
}

// --- the hit counter, four instances at once -------------------------------------------------

/// The bookshop's page-view counter. Read, add one and write back, and two instances
/// that read 10 at the same moment both write 11: one view is lost. `incr` is one atomic
/// step on the server, so none is.
const HIT_COUNTER: &str = "views:/books/312";

/// One instance's connection to the counter.
enum Counter {
    Redis(RedisStore),
    Memcached(MemcachedStore),
    Postgres(SqlStore),
}

impl Counter {
    fn open(backend: Backend, address: &str) -> Counter {
        match backend {
            Backend::Redis => Counter::Redis(redis_store(address)),
            Backend::Memcached => Counter::Memcached(memcached_store(address)),
            Backend::Postgres => Counter::Postgres(postgres_store(address)),
        }
    }

    fn count_view(&self) -> i64 {
        let key = HIT_COUNTER.to_owned();
        match self {
            Counter::Redis(store) => CacheApi::<String, i64>::incr(store, &key, 1),
            Counter::Memcached(store) => CacheApi::<String, i64>::incr(store, &key, 1),
            Counter::Postgres(store) => CacheApi::<String, i64>::incr(store, &key, 1),
        }
        .unwrap()
    }

    fn views(&self) -> Option<i64> {
        let key = HIT_COUNTER.to_owned();
        match self {
            Counter::Redis(store) => Store::<String, i64>::get(store, &key),
            Counter::Memcached(store) => Store::<String, i64>::get(store, &key),
            Counter::Postgres(store) => Store::<String, i64>::get(store, &key),
        }
        .unwrap()
    }
}

/// In an instance: counts `HITS_EACH` views once the parent releases every instance.
fn count_hits(counter: &Counter) {
    // Connected before the start, so that the race is between increments.
    instances::report("ready", counter.views().unwrap_or(0));
    instances::wait_for("go");
    let mut highest = 0;
    for _ in 0..HITS_EACH {
        highest = highest.max(counter.count_view());
    }
    instances::report("highest", highest);
}

fn counted_by_racing_instances(backend: Backend, address: String) {
    let counter = Counter::open(backend, &address);
    // The table (for PostgreSQL) exists before the instances start.
    assert_eq!(counter.views(), None);

    let mut counters: Vec<Instance> = (0..COUNTERS)
        .map(|_| start("count_hits", backend, &address))
        .collect();
    for instance in &mut counters {
        assert_eq!(instance.expect("ready"), "0");
    }
    // Every instance is connected and waiting: release them together.
    counters.iter_mut().for_each(|instance| instance.send("go"));
    let mut highest = Vec::new();
    for mut instance in counters {
        highest.push(instance.expect("highest").parse::<i64>().unwrap());
        instance.finish();
    }

    let total = COUNTERS as i64 * HITS_EACH;
    assert_eq!(counter.views(), Some(total), "no view lost");
    // The instance that counted last saw the total; each saw at least its own views.
    assert_eq!(highest.iter().max(), Some(&total));
    assert!(highest.iter().all(|&seen| seen >= HITS_EACH));
}

#[test]
fn redis_instances_counting_at_once_lose_no_hit() {
    let server = RedisServer::start();
    counted_by_racing_instances(Backend::Redis, server.url());
}

#[test]
fn memcached_instances_counting_at_once_lose_no_hit() {
    let server = MemcachedServer::start();
    counted_by_racing_instances(Backend::Memcached, server.address());
}

#[test]
fn postgres_instances_counting_at_once_lose_no_hit() {
    let server = PostgresServer::start();
    counted_by_racing_instances(Backend::Postgres, server.url());
}

// --- a page, across instances --------------------------------------------------------------

static RENDERS: AtomicUsize = AtomicUsize::new(0);

/// One instance of the bookstore: its book page behind a page cache on the shared Redis,
/// and the form that updates the book.
fn bookstore(redis: &str) -> Router {
    let pages = RedisStore::builder(redis)
        .prefix("instances")
        .namespace("pages")
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    Router::new()
        .route(
            "/books/312",
            get(|| async {
                let render = RENDERS.fetch_add(1, Ordering::SeqCst) + 1;
                format!("<h1>Book 312</h1><p>render {render}</p>")
            })
            .post(|| async { "saved" }),
        )
        .layer(PageCacheLayer::with_store(pages))
}

/// The `x-cache` answer to `method` on the book's page.
async fn send(app: &Router, method: &str) -> String {
    let request = Request::builder()
        .method(method)
        .uri("http://shop.example/books/312")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{method}: {}",
        response.status()
    );
    response
        .headers()
        .get("x-cache")
        .map_or(String::new(), |value| value.to_str().unwrap().to_owned())
}

/// In an instance: the page another instance rendered, then the form posted on it.
fn browse_then_post(redis: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = bookstore(redis);
        instances::report("x_cache", send(&app, "GET").await);
        instances::report("renders", RENDERS.load(Ordering::SeqCst));
        send(&app, "POST").await;
        instances::report("posted", true);
    });
}

#[tokio::test]
async fn a_page_one_instance_rendered_is_served_by_another_until_a_form_post_there() {
    let server = RedisServer::start();
    let app = bookstore(&server.url());
    assert_eq!(send(&app, "GET").await, "MISS");
    assert_eq!(send(&app, "GET").await, "HIT");

    let other = Arc::new(std::sync::Mutex::new(start(
        "browse_then_post",
        Backend::Redis,
        &server.url(),
    )));
    let reports = tokio::task::spawn_blocking({
        let other = Arc::clone(&other);
        move || {
            let mut other = other.lock().unwrap();
            ["x_cache", "renders", "posted"].map(|name| other.expect(name))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        reports[0], "HIT",
        "the other instance serves this one's page"
    );
    assert_eq!(reports[1], "0", "without rendering it");
    assert_eq!(reports[2], "true");
    Arc::into_inner(other)
        .unwrap()
        .into_inner()
        .unwrap()
        .finish();

    // The post in the other instance invalidated the page here too (RFC 9111 §4.4).
    assert_eq!(send(&app, "GET").await, "MISS");
    assert_eq!(RENDERS.load(Ordering::SeqCst), 2);
}
