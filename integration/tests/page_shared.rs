//! Pages shared by several instances of an application through a remote store:
//! a page rendered by one instance is a hit on another, an invalidation on one is seen
//! by all, and a dead server only costs renders. Real `redis-server` and `memcached`
//! processes, started by the tests.

#![cfg(all(feature = "axum", feature = "redis", feature = "memcached"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, MemcachedStore, PageCacheLayer, RedisStore};
use cachemacro_test_support::{MemcachedServer, RedisServer};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// One instance of the application: its own router, layer and store connection; the
/// renders counter is shared so the test sees every render of every instance.
fn instance(layer: PageCacheLayer, renders: &Arc<AtomicUsize>) -> Router {
    let renders = Arc::clone(renders);
    Router::new()
        .route(
            "/books/312",
            get(move |headers: HeaderMap| {
                let run = renders.fetch_add(1, Ordering::SeqCst) + 1;
                let language = headers
                    .get("accept-language")
                    .map_or("en".to_owned(), |value| value.to_str().unwrap().to_owned());
                async move { format!("<h1>Book 312</h1><p>{language}, render {run}</p>") }
            }),
        )
        .layer(layer)
}

struct Answer {
    x_cache: String,
    etag: String,
    body: String,
}

async fn fetch(app: &Router, language: &str) -> Answer {
    let request = Request::get("http://shop.example/books/312")
        .header("accept-language", language)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map_or(String::new(), |value| value.to_str().unwrap().to_owned())
    };
    let (x_cache, etag) = (header("x-cache"), header("etag"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        x_cache,
        etag,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn redis_pages(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix("pages-test")
        .namespace("bookshop")
        .retry_after(Duration::from_millis(100))
        .build()
        .unwrap()
}

fn memcached_pages(servers: &[String]) -> MemcachedStore {
    MemcachedStore::builder(servers.iter().cloned())
        .prefix("pages-test")
        .namespace("bookshop")
        .retry_after(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// The whole story on two instances over one shared backend.
async fn shared_between_instances(one: PageCacheLayer, two: PageCacheLayer) {
    let one_cache = one.cache().clone();
    let renders = Arc::new(AtomicUsize::new(0));
    let (app_one, app_two) = (instance(one, &renders), instance(two, &renders));

    let first = fetch(&app_one, "en").await;
    assert_eq!(first.x_cache, "MISS");
    let elsewhere = fetch(&app_two, "en").await;
    assert_eq!(
        elsewhere.x_cache, "HIT",
        "instance two serves instance one's page"
    );
    assert_eq!(elsewhere.body, first.body);
    assert_eq!(elsewhere.etag, first.etag);
    assert_eq!(renders.load(Ordering::SeqCst), 1);

    // Variants are shared too: French is rendered once, then a hit everywhere.
    assert_eq!(fetch(&app_two, "fr").await.x_cache, "MISS");
    let french = fetch(&app_one, "fr").await;
    assert_eq!(french.x_cache, "HIT");
    assert!(french.body.contains("fr, render 2"), "{}", french.body);
    assert_eq!(renders.load(Ordering::SeqCst), 2);

    // An invalidation on one instance drops every variant for all of them.
    assert!(one_cache.invalidate("http://shop.example/books/312"));
    assert_eq!(fetch(&app_two, "en").await.x_cache, "MISS");
    assert_eq!(fetch(&app_two, "fr").await.x_cache, "MISS");
    assert_eq!(fetch(&app_one, "fr").await.x_cache, "HIT");
    assert_eq!(renders.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn redis_pages_are_shared_by_every_instance() {
    let server = RedisServer::start();
    let layer = |url: &str| PageCacheLayer::with_store(redis_pages(url)).vary(["accept-language"]);
    shared_between_instances(layer(&server.url()), layer(&server.url())).await;
}

#[tokio::test]
async fn memcached_pages_are_shared_by_every_instance() {
    let servers = [MemcachedServer::start(), MemcachedServer::start()];
    let addresses: Vec<String> = servers.iter().map(MemcachedServer::address).collect();
    let layer =
        || PageCacheLayer::with_store(memcached_pages(&addresses)).vary(["accept-language"]);
    shared_between_instances(layer(), layer()).await;
}

#[tokio::test]
async fn a_dead_server_costs_renders_not_answers() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let layer = PageCacheLayer::with_store(redis_pages(&url));
    let cache = layer.cache().clone();
    let renders = Arc::new(AtomicUsize::new(0));
    let app = instance(layer, &renders);
    for run in 1..=3 {
        let answer = fetch(&app, "en").await;
        assert!(
            answer.body.contains(&format!("render {run}")),
            "{}",
            answer.body
        );
    }
    assert_eq!(renders.load(Ordering::SeqCst), 3);
    assert!(cache.stats().errors >= 3, "{:?}", cache.stats());
}

static MACRO_REDIS_URL: OnceLock<String> = OnceLock::new();
static MACRO_RENDERS: AtomicUsize = AtomicUsize::new(0);

/// No namespace of its own: the handler's name becomes the namespace.
fn macro_store() -> RedisStore {
    RedisStore::builder(
        MACRO_REDIS_URL
            .get()
            .expect("the test sets the URL first")
            .as_str(),
    )
    .prefix("pages-test")
    .build()
    .unwrap()
}

#[cache_page(ttl = "15m", store = macro_store())]
async fn stores_near(axum::extract::Path(postcode): axum::extract::Path<String>) -> String {
    let run = MACRO_RENDERS.fetch_add(1, Ordering::SeqCst) + 1;
    format!("stores near {postcode}, render {run}")
}

#[tokio::test]
async fn cache_page_takes_a_remote_store_in_the_handlers_own_namespace() {
    let server = RedisServer::start();
    MACRO_REDIS_URL.set(server.url()).unwrap();
    let app: Router = Router::new().route("/stores/{postcode}", get(stores_near));
    for _ in 0..3 {
        let request = Request::get("/stores/EC1A").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"stores near EC1A, render 1");
    }
    assert_eq!(MACRO_RENDERS.load(Ordering::SeqCst), 1);
    assert_eq!(stores_near::stats().hits, 2);

    // The page lives in Redis under the handler's namespace, not the builder's default.
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("pages-test:*")
        .query(&mut redis)
        .unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|key| String::from_utf8_lossy(key).contains("stores_near")),
        "{:?}",
        keys.iter()
            .map(|key| String::from_utf8_lossy(key))
            .collect::<Vec<_>>()
    );
    stores_near::clear();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("pages-test:*")
        .query(&mut redis)
        .unwrap();
    assert!(keys.is_empty(), "clear removed the handler's pages");
}
