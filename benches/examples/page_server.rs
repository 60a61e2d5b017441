//! The server of the page-cache throughput benchmark: the same 796-byte bookstore page
//! served five ways on one port, for a load generator in another process.
//!
//! - `/static/312`: a pre-built body, the ceiling;
//! - `/headed/312`: the same pre-built body with the five fields a hit of ours adds
//!   (`ETag`, `Expires`, `Cache-Control`, `Age`, `x-cache`) as constants: the ceiling of
//!   any cache that answers with such a head, whatever its lookup costs;
//! - `/layer/312`: the bookstore's handler behind `PageCacheLayer`;
//! - `/macro/312`: the handler as a `#[cache_page]` function;
//! - `/peer/312`: the handler behind `axum-response-cache`'s `CacheLayer`;
//! - `/renders`: how many times each cached route ran its handler (not cached). The peer
//!   stamps nothing on its hits, so an unchanged count is how a driver proves that every
//!   request of a run was a hit, for all three.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --features axum --example page_server -- 127.0.0.1:3001
//! ```
//!
//! `benches/page_wrk.sh` builds it, warms and checks every route, and drives it with wrk.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use axum_response_cache::CacheLayer;
use cachemacro_runtime::{cache_page, PageCacheLayer};

/// Long enough that nothing expires during a run, so every request after the warm-up
/// is a hit.
const TTL: Duration = Duration::from_secs(3600);

static LAYER_RENDERS: AtomicU64 = AtomicU64::new(0);
static MACRO_RENDERS: AtomicU64 = AtomicU64::new(0);
static PEER_RENDERS: AtomicU64 = AtomicU64::new(0);

/// The fields a hit of ours answers beyond the static route's, as constants.
const HIT_FIELDS: [(HeaderName, HeaderValue); 5] = [
    (
        header::ETAG,
        HeaderValue::from_static("\"4e5b4fe581a98100157ffe5750fa7d66\""),
    ),
    (
        header::EXPIRES,
        HeaderValue::from_static("Tue, 01 Dec 2026 19:02:59 GMT"),
    ),
    (
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    ),
    (header::AGE, HeaderValue::from_static("0")),
    (
        HeaderName::from_static("x-cache"),
        HeaderValue::from_static("HIT"),
    ),
];

/// The page every route serves: the size of a small book page.
fn page(id: u32) -> String {
    format!(
        "<h1>Book {id}</h1><p>A fine book.</p>{}",
        "<li>\"Loved it\"</li>".repeat(40)
    )
}

/// The bookstore's handler: a database round trip and a template. Slow enough that a
/// miss during a run would show in its figures, besides in `/renders`.
async fn render(renders: &AtomicU64, id: u32) -> Html<String> {
    renders.fetch_add(1, Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Html(page(id))
}

async fn layer_book(Path(id): Path<u32>) -> Html<String> {
    render(&LAYER_RENDERS, id).await
}

#[cache_page(ttl = "1h")]
async fn macro_book(Path(id): Path<u32>) -> Html<String> {
    render(&MACRO_RENDERS, id).await
}

async fn peer_book(Path(id): Path<u32>) -> Html<String> {
    render(&PEER_RENDERS, id).await
}

async fn renders() -> String {
    format!(
        "layer={} macro={} peer={}\n",
        LAYER_RENDERS.load(Relaxed),
        MACRO_RENDERS.load(Relaxed),
        PEER_RENDERS.load(Relaxed)
    )
}

fn site() -> Router {
    // Built once: the ceiling answers the same bytes without rendering them.
    let ceiling: &'static str = Box::leak(page(312).into_boxed_str());
    Router::new()
        .route("/static/{id}", get(move || async move { Html(ceiling) }))
        .route(
            "/headed/{id}",
            get(move || async move { (HIT_FIELDS, Html(ceiling)) }),
        )
        .route("/macro/{id}", get(macro_book))
        .route("/renders", get(renders))
        .merge(
            Router::new()
                .route("/layer/{id}", get(layer_book))
                .layer(PageCacheLayer::new().ttl(TTL)),
        )
        .merge(
            Router::new()
                .route("/peer/{id}", get(peer_book))
                .layer(CacheLayer::with_lifespan(TTL)),
        )
}

#[tokio::main]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .unwrap_or_else(|error| panic!("cannot listen on {address}: {error}"));
    println!(
        "serving /static/312, /headed/312, /layer/312, /macro/312, /peer/312 and /renders on http://{address}"
    );
    axum::serve(listener, site()).await.unwrap();
}
