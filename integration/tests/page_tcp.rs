//! The page cache over a real socket: an axum server on 127.0.0.1:0 and hyper's client,
//! so that what hyper adds or strips on the wire (`Date`, `Content-Length`, `HEAD`
//! bodies, `304`s) is part of what is tested.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, PageCacheLayer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

#[derive(Clone, Default)]
struct Renders(Arc<AtomicUsize>);

impl Renders {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[cache_page(ttl = "15m")]
async fn book(Path(id): Path<u32>, State(renders): State<Renders>) -> String {
    // A slow render, so that concurrent requests really overlap.
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("book {id}, render {}", renders.bump())
}

async fn page(State(renders): State<Renders>) -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("page, render {}", renders.bump())
}

async fn cookie(
    State(renders): State<Renders>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::SET_COOKIE, "session=1")],
        format!("cookie, render {}", renders.bump()),
    )
}

struct Server {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    renders: Renders,
}

/// `/books/{id}` cached by `#[cache_page]`; `/page` and `/cookie` by the layer.
async fn start() -> Server {
    let renders = Renders::default();
    let layered = Router::new()
        .route("/page", get(page).post(page))
        .route("/cookie", get(cookie))
        .layer(PageCacheLayer::new().ttl(Duration::from_secs(900)));
    let app = Router::new()
        .route("/books/{id}", get(book))
        .merge(layered)
        .with_state(renders.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{address}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
        renders,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn x_cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .map_or("", |value| value.to_str().unwrap())
    }
}

impl Server {
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::default()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[]).await
    }
}

#[tokio::test]
async fn layer_pages_hit_revalidate_and_answer_head_over_the_wire() {
    let server = start().await;
    let miss = server.get("/page").await;
    let hit = server.get("/page").await;
    assert_eq!((miss.x_cache(), hit.x_cache()), ("MISS", "HIT"));
    assert_eq!(hit.body, "page, render 1");
    assert!(hit.headers.contains_key(header::AGE));
    assert!(
        hit.headers.contains_key(header::DATE),
        "hyper dates every response"
    );
    assert_eq!(hit.headers[header::CONTENT_LENGTH], "14");

    let etag = miss.headers[header::ETAG].to_str().unwrap().to_owned();
    let revalidated = server
        .send(Method::GET, "/page", &[("if-none-match", &etag)])
        .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.body, "");

    let head = server.send(Method::HEAD, "/page", &[]).await;
    assert_eq!(
        (head.status, head.x_cache(), head.body.as_str()),
        (StatusCode::OK, "HIT", "")
    );
    assert_eq!(head.headers[header::CONTENT_LENGTH], "14");
    assert_eq!(server.renders.count(), 1);
}

#[tokio::test]
async fn posts_cookies_and_authorized_requests_are_not_cached_over_the_wire() {
    let server = start().await;
    for run in 1..=2 {
        assert_eq!(
            server.send(Method::POST, "/page", &[]).await.body,
            format!("page, render {run}")
        );
    }
    for _ in 0..2 {
        assert_eq!(server.get("/cookie").await.x_cache(), "MISS");
    }
    for _ in 0..2 {
        let answer = server
            .send(Method::GET, "/page", &[("authorization", "Bearer alice")])
            .await;
        assert_eq!(answer.x_cache(), "MISS");
    }
    assert_eq!(server.renders.count(), 6);
}

#[tokio::test]
async fn a_macro_handler_is_cached_over_the_wire() {
    let server = start().await;
    assert_eq!(server.get("/books/312").await.x_cache(), "MISS");
    let hit = server.get("/books/312").await;
    assert_eq!(
        (hit.x_cache(), hit.body.as_str()),
        ("HIT", "book 312, render 1")
    );
    assert!(hit.headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
    let host = server.base.trim_start_matches("http://");
    assert!(
        book::invalidate(&format!("http://{host}/books/312")),
        "keyed by the Host header"
    );
    assert_eq!(server.get("/books/312").await.x_cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_clients_render_a_cold_page_once() {
    const CLIENTS: usize = 100;
    let server = Arc::new(start().await);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                server.get("/books/7").await
            })
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "book 7, render 1")
        );
    }
    assert_eq!(server.renders.count(), 1);
}
