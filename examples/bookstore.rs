//! The bookstore of the page-cache demo: `/books/{id}` renders from two (simulated)
//! database calls and a template, `/stores/nearby` answers a memoized geographic query,
//! and `/counter` is an old-school hit counter that must never be cached.
//!
//! ```text
//! cargo run --release --features axum --example bookstore             # a tour, then exit
//! cargo run --release --features axum --example bookstore -- --serve  # on 127.0.0.1:3000
//! ```
//!
//! The tour starts the server on a free loopback port, sends requests with a real HTTP
//! client and prints what happened to each: latency, status, `x-cache`, and why a
//! response was or was not cached.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, memoize, PageCacheLayer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

/// The stand-in for a database: every query takes a while and is counted.
#[derive(Clone, Default)]
struct Db {
    queries: Arc<AtomicU64>,
    hits: Arc<AtomicU64>,
}

impl Db {
    async fn query(&self, millis: u64) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
}

/// Two database calls (details, then reviews) and a template: about 50 ms.
#[cache_page(ttl = "15m", stale = "5m")]
async fn book(Path(id): Path<u32>, State(db): State<Db>) -> impl IntoResponse {
    db.query(25).await; // SELECT * FROM books WHERE id = $1
    db.query(20).await; // SELECT * FROM reviews WHERE book_id = $1 ORDER BY posted DESC LIMIT 10
    std::thread::sleep(Duration::from_millis(5)); // the template
    Html(format!(
        "<h1>Book {id}</h1><p>A fine book.</p><ul><li>\"Loved it\"</li><li>\"Too short\"</li></ul>"
    ))
}

/// The `nearby_stores(postcode, radius)` of the first demo, keyed by both arguments (not by
/// `'{}{}'.format(postcode, radius)`, which maps ("EC1", 15) and ("EC11", 5) together).
#[memoize(ttl = "15m", capacity = 10_000)]
fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(30)); // a geographic query and a third-party call
    vec![
        format!("{postcode} High Street, within {radius} km"),
        format!("{postcode} Station Road, within {radius} km"),
    ]
}

/// The query string is read as pairs, so that the example needs no serde derive.
async fn stores_nearby(Query(params): Query<Vec<(String, String)>>) -> impl IntoResponse {
    let find = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let (Some(postcode), Some(Ok(radius))) =
        (find("postcode"), find("radius").map(|r| r.parse::<u32>()))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "postcode and radius, please".to_owned(),
        )
            .into_response();
    };
    let stores = tokio::task::spawn_blocking(move || nearby_stores(&postcode, radius))
        .await
        .expect("the store query does not panic");
    Html(stores.join("<br>")).into_response()
}

/// An old-school hit counter: a page that is different on every request, so it says
/// `no-store` and the per-site cache leaves it alone.
async fn counter(State(db): State<Db>) -> impl IntoResponse {
    let hits = db.hits.fetch_add(1, Ordering::Relaxed) + 1;
    (
        [(header::CACHE_CONTROL, "no-store")],
        format!("You are visitor number {hits}"),
    )
}

fn app(db: Db) -> Router {
    // `/books/{id}` has its own cache from `#[cache_page]`; the layer caches the rest.
    let site = Router::new()
        .route("/stores/nearby", get(stores_nearby))
        .route("/counter", get(counter).post(counter))
        .layer(PageCacheLayer::new().ttl(Duration::from_secs(900)));
    Router::new()
        .route("/books/{id}", get(book))
        .merge(site)
        .with_state(db)
}

#[tokio::main]
async fn main() {
    let db = Db::default();
    if std::env::args().any(|arg| arg == "--serve") {
        let listener = TcpListener::bind("127.0.0.1:3000")
            .await
            .expect("port 3000 is free");
        println!("serving the bookstore on http://127.0.0.1:3000 (try /books/312)");
        axum::serve(listener, app(db))
            .await
            .expect("the server runs");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(axum::serve(listener, app(db.clone())).into_future());
    Tour::new(format!("http://{address}"), db).run().await;
}

struct Tour {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    db: Db,
}

struct Row {
    millis: f64,
    status: StatusCode,
    x_cache: String,
    headers: HeaderMap,
    bytes: usize,
}

impl Tour {
    fn new(base: String, db: Db) -> Tour {
        Tour {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            db,
        }
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Row {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::default()).expect("a valid request");
        let started = Instant::now();
        let response = self
            .client
            .request(request)
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a complete body").to_bytes();
        Row {
            millis: started.elapsed().as_secs_f64() * 1000.0,
            status: parts.status,
            x_cache: parts
                .headers
                .get("x-cache")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-")
                .to_owned(),
            headers: parts.headers,
            bytes: body.len(),
        }
    }

    /// Sends one request and prints its line of the table.
    async fn step(&self, method: Method, path: &str, headers: &[(&str, &str)], why: &str) -> Row {
        let queries_before = self.db.queries.load(Ordering::Relaxed);
        let row = self.request(method.clone(), path, headers).await;
        let queries = self.db.queries.load(Ordering::Relaxed) - queries_before;
        let shown = match headers.first() {
            Some((name, _)) => format!("{method} {path} [{name}]"),
            None => format!("{method} {path}"),
        };
        println!(
            "{shown:<50} {:>9.2} ms  {:>3}  {:<5} {:>5} B  {queries:>2} db  {why}",
            row.millis,
            row.status.as_u16(),
            row.x_cache,
            row.bytes,
        );
        row
    }

    async fn run(&self) {
        println!(
            "{:<50} {:>12}  {:>3}  {:<5} {:>7}  {:>5}  why",
            "request", "latency", "st", "cache", "body", "db"
        );
        println!("{}", "-".repeat(130));
        let first = self
            .step(
                Method::GET,
                "/books/312",
                &[],
                "cold: 2 db calls + template, then stored",
            )
            .await;
        let cached = self
            .step(Method::GET, "/books/312", &[], "served from the page cache")
            .await;
        let etag = first.headers[header::ETAG]
            .to_str()
            .expect("an ASCII ETag")
            .to_owned();
        self.step(
            Method::GET,
            "/books/312",
            &[("if-none-match", &etag)],
            "ETag matches: 304 Not Modified, no body",
        )
        .await;
        self.step(
            Method::HEAD,
            "/books/312",
            &[],
            "HEAD answered from the GET entry",
        )
        .await;
        self.step(
            Method::GET,
            "/books/312",
            &[("authorization", "Bearer alice")],
            "not cached: request carries Authorization",
        )
        .await;
        self.step(Method::GET, "/books/313", &[], "another book, another key")
            .await;
        self.step(
            Method::GET,
            "/stores/nearby?postcode=EC1&radius=15",
            &[],
            "layer miss; #[memoize] runs the query",
        )
        .await;
        self.step(
            Method::GET,
            "/stores/nearby?radius=15&postcode=EC1",
            &[],
            "same parameters, other order: same key",
        )
        .await;
        self.step(
            Method::GET,
            "/stores/nearby?postcode=EC11&radius=5",
            &[],
            "\"EC1\"+\"15\" vs \"EC11\"+\"5\": different keys",
        )
        .await;
        self.step(
            Method::GET,
            "/counter",
            &[],
            "not cached: Cache-Control: no-store",
        )
        .await;
        self.step(
            Method::GET,
            "/counter",
            &[],
            "not cached: Cache-Control: no-store",
        )
        .await;
        self.step(
            Method::POST,
            "/counter",
            &[],
            "not cached: only GET and HEAD are",
        )
        .await;
        let host = self.base.trim_start_matches("http://");
        let removed = book::invalidate(&format!("http://{host}/books/312"));
        println!(
            "{:<50} book::invalidate(..) -> {removed}",
            "(invalidate /books/312)"
        );
        self.step(
            Method::GET,
            "/books/312",
            &[],
            "invalidated: rendered again",
        )
        .await;

        println!();
        println!(
            "first request {:.2} ms, cached request {:.2} ms: {:.0}x faster",
            first.millis,
            cached.millis,
            first.millis / cached.millis
        );
        let stats = book::stats();
        println!(
            "book page cache: {} hits, {} misses, {} entries; nearby_stores memo: {} hits, {} misses",
            stats.hits,
            stats.misses,
            stats.entries,
            nearby_stores::stats().hits,
            nearby_stores::stats().misses
        );
        assert_eq!(
            cached.x_cache, "HIT",
            "the tour expects the second request to hit"
        );
    }
}
