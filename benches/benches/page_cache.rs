//! A cached page against the ceiling (the same route answering a pre-built
//! static body) and against the uncached handler, driving the axum `Router` as a
//! `tower::Service` (no sockets, so that the figures are the cache's, not the kernel's).
//!
//! The `page_cache_socket` group sends the same requests over loopback TCP with hyper's
//! client (keep-alive, one request at a time). Throughput under a load generator in
//! another process is `benches/page_wrk.sh`'s, with `examples/page_server.rs`.
//!
//! ```text
//! cargo bench -p cachemacro-benches --features axum --bench page_cache -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::Request;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, PageCacheLayer};
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The page every variant serves: the size of a small book page.
fn render(id: u32) -> String {
    format!(
        "<h1>Book {id}</h1><p>A fine book.</p>{}",
        "<li>\"Loved it\"</li>".repeat(40)
    )
}

/// The bookstore's handler: two database calls and a template, about 50 ms in all
/// (see `examples/bookstore.rs`).
async fn slow_book(Path(id): Path<u32>) -> Html<String> {
    tokio::time::sleep(Duration::from_millis(25)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::thread::sleep(Duration::from_millis(5));
    Html(render(id))
}

#[cache_page(ttl = "1h")]
async fn macro_book(Path(id): Path<u32>) -> Html<String> {
    slow_book(Path(id)).await
}

fn request() -> Request<Body> {
    Request::get("/books/312").body(Body::empty()).unwrap()
}

/// One request through the router, body read to the end.
async fn serve(router: &Router) -> usize {
    let response = router.clone().oneshot(request()).await.unwrap();
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

/// The three routes of the socket measurements: `/static`, `/layer` and `/macro`.
fn site(page: &'static str) -> Router {
    Router::new()
        .route("/static/{id}", get(move || async move { Html(page) }))
        .route("/macro/{id}", get(macro_book))
        .merge(
            Router::new()
                .route("/layer/{id}", get(slow_book))
                .layer(PageCacheLayer::new().ttl(Duration::from_secs(3600))),
        )
}

fn page_cache(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let page: &'static str = Box::leak(render(312).into_boxed_str());
    let ceiling = Router::new().route("/books/{id}", get(move || async move { Html(page) }));
    // The ceiling behind a do-nothing layer: what `Router::layer` itself costs.
    let ceiling_layered = Router::new()
        .route("/books/{id}", get(move || async move { Html(page) }))
        .layer(tower::util::MapResponseLayer::new(
            |response: axum::response::Response| response,
        ));
    let layered = Router::new()
        .route("/books/{id}", get(slow_book))
        .layer(PageCacheLayer::new().ttl(Duration::from_secs(3600)));
    let with_macro = Router::new().route("/books/{id}", get(macro_book));
    let uncached = Router::new().route("/books/{id}", get(slow_book));
    // Fill both caches before measuring the hit path.
    runtime.block_on(async {
        serve(&layered).await;
        serve(&with_macro).await;
    });

    let mut group = c.benchmark_group("page_cache");
    for (name, router) in [
        ("static_body_ceiling", &ceiling),
        ("static_body_behind_noop_layer", &ceiling_layered),
        ("layer_hit", &layered),
        ("macro_hit", &with_macro),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(runtime.block_on(serve(router))))
        });
    }
    group.finish();

    // The same three over a socket: one server, one keep-alive client.
    let site = site(page);
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
        address
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let fetch = |path: &str| {
        let request = Request::get(format!("http://{address}{path}"))
            .body(Full::default())
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .len()
        }
    };
    runtime.block_on(async {
        fetch("/layer/312").await;
        fetch("/macro/312").await;
    });
    let mut socket = c.benchmark_group("page_cache_socket");
    for (name, path) in [
        ("static_body_ceiling", "/static/312"),
        ("layer_hit", "/layer/312"),
        ("macro_hit", "/macro/312"),
    ] {
        socket.bench_function(name, |b| {
            b.iter(|| black_box(runtime.block_on(fetch(path))))
        });
    }
    socket.finish();

    let mut slow = c.benchmark_group("page_cache_uncached");
    slow.sample_size(10);
    slow.bench_function("uncached_handler", |b| {
        b.iter(|| black_box(runtime.block_on(serve(&uncached))))
    });
    slow.finish();
}

criterion_group!(benches, page_cache);
criterion_main!(benches);
