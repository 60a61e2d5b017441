//! `#[cache_page]` on axum handlers: the handler stays a handler, its options reach the
//! page cache, and its companions work. The HTTP rules themselves are the core's, tested
//! through the layer in `page_semantics.rs`.
#![deny(warnings, unused_qualifications)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, CachedPage, MemoryStore, PageKey};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The expansion must not depend on what `core` means at the call site.
#[allow(dead_code)]
mod core {}

#[derive(Clone, Default)]
struct Db {
    calls: Arc<AtomicUsize>,
}

impl Db {
    fn query(&self) -> usize {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[cache_page(ttl = "15m")]
async fn book(Path(id): Path<u32>, State(db): State<Db>) -> impl IntoResponse {
    let call = db.query();
    Html(format!("<h1>Book {id}</h1><p>call {call}</p>"))
}

/// The companions' own handler: `clear` empties a handler's whole cache, and would race
/// with the other tests' pages of `book`, which run alongside.
#[cache_page(ttl = "15m")]
async fn shelf(Path(id): Path<u32>, State(db): State<Db>) -> String {
    format!("shelf {id} call {}", db.query())
}

/// A concrete return type with `?` in the body: its type is pinned by the macro.
#[cache_page]
async fn review(Path(id): Path<u32>, State(db): State<Db>) -> Result<String, StatusCode> {
    let id: u8 = id.try_into().map_err(|_| StatusCode::NOT_FOUND)?;
    Ok(format!("review {id} call {}", db.query()))
}

#[cache_page(vary = ["Accept-Language"], query = false, key_prefix = "greetings:")]
async fn greeting(headers: HeaderMap, State(db): State<Db>) -> String {
    let language = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("en")
        .to_owned();
    format!("{language} call {}", db.query())
}

#[cache_page(store = MemoryStore::<PageKey, CachedPage>::builder().capacity(100).build(), crate = "cachemacro_runtime")]
async fn search(
    Query(params): Query<Vec<(String, String)>>,
    State(db): State<Db>,
    body: Bytes,
) -> String {
    format!("{params:?} {} bytes, call {}", body.len(), db.query())
}

pub(crate) mod nested {
    use super::*;

    #[cache_page(ttl = 60)]
    pub(crate) async fn public_page() -> &'static str {
        "public"
    }
}

fn app(db: Db) -> Router {
    Router::new()
        .route("/books/{id}", get(book))
        .route("/shelves/{id}", get(shelf))
        .route("/reviews/{id}", get(review))
        .route("/greeting", get(greeting))
        .route("/search", get(search).post(search))
        .route("/public", get(nested::public_page))
        .with_state(db)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let x_cache = response
        .headers()
        .get("x-cache")
        .map_or(String::new(), |value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, x_cache, String::from_utf8(body.to_vec()).unwrap())
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_handler_page_is_rendered_once_per_path() {
    let db = Db::default();
    let app = app(db.clone());
    let first = send(&app, get_req("/books/312")).await;
    let again = send(&app, get_req("/books/312")).await;
    let other = send(&app, get_req("/books/313")).await;
    assert_eq!(
        first,
        (
            StatusCode::OK,
            "MISS".into(),
            "<h1>Book 312</h1><p>call 1</p>".into()
        )
    );
    assert_eq!(
        again,
        (
            StatusCode::OK,
            "HIT".into(),
            "<h1>Book 312</h1><p>call 1</p>".into()
        )
    );
    assert_eq!(other.1, "MISS");
    assert_eq!(db.calls(), 2);
}

#[tokio::test]
async fn the_companions_invalidate_clear_and_count() {
    let db = Db::default();
    let app = app(db.clone());
    send(&app, get_req("/shelves/1")).await;
    send(&app, get_req("/shelves/1")).await;
    send(&app, get_req("/shelves/2")).await;
    assert!(shelf::stats().hits >= 1);
    assert!(shelf::invalidate("/shelves/1"));
    assert_eq!(send(&app, get_req("/shelves/1")).await.1, "MISS");
    assert_eq!(send(&app, get_req("/shelves/2")).await.1, "HIT");
    shelf::clear();
    assert_eq!(send(&app, get_req("/shelves/2")).await.1, "MISS");
    assert_eq!(db.calls(), 4);
}

#[tokio::test]
async fn error_responses_are_returned_but_not_stored() {
    let db = Db::default();
    let app = app(db.clone());
    assert_eq!(send(&app, get_req("/reviews/7")).await.2, "review 7 call 1");
    assert_eq!(send(&app, get_req("/reviews/7")).await.1, "HIT");
    for _ in 0..2 {
        assert_eq!(
            send(&app, get_req("/reviews/300")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(db.calls(), 1);
    assert_eq!(review::stats().misses, 3);
}

#[tokio::test]
async fn vary_and_query_options_reach_the_cache() {
    let db = Db::default();
    let app = app(db.clone());
    let request = |language: &str, query: &str| {
        Request::get(format!("/greeting{query}"))
            .header(header::ACCEPT_LANGUAGE, language)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, request("en", "")).await.2, "en call 1");
    assert_eq!(send(&app, request("fr", "")).await.2, "fr call 2");
    let english = send(&app, request("en", "?ref=mail")).await;
    assert_eq!(
        (english.1.as_str(), english.2.as_str()),
        ("HIT", "en call 1")
    );
    assert_eq!(db.calls(), 2);
}

#[tokio::test]
async fn a_body_extractor_stays_last_and_post_passes_through() {
    let db = Db::default();
    let app = app(db.clone());
    let get = send(&app, get_req("/search?b=2&a=1")).await;
    assert_eq!(get.1, "MISS");
    assert_eq!(send(&app, get_req("/search?a=1&b=2")).await.1, "HIT");
    let post = Request::post("/search?a=1&b=2")
        .body(Body::from("form"))
        .unwrap();
    let posted = send(&app, post).await;
    assert_eq!(posted.1, "");
    assert!(posted.2.ends_with("4 bytes, call 2"), "{}", posted.2);
    assert_eq!(db.calls(), 2);
}

#[tokio::test]
async fn a_handler_in_a_module_keeps_its_visibility() {
    let app = app(Db::default());
    assert_eq!(send(&app, get_req("/public")).await.2, "public");
    assert_eq!(send(&app, get_req("/public")).await.1, "HIT");
    assert_eq!(nested::public_page::stats().hits, 1);
}

/// A guard: turns away requests without a session before the handler (or its cache)
/// may answer them.
struct Member;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Member {
    type Rejection = StatusCode;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.headers.get("x-session") {
            Some(_) => Ok(Member),
            None => Err(StatusCode::UNAUTHORIZED),
        }
    }
}

#[cache_page]
async fn members_page(_member: Member, State(db): State<Db>) -> String {
    format!("members only, call {}", db.query())
}

#[tokio::test]
async fn a_guard_extractor_still_turns_requests_away_from_a_stored_page() {
    let db = Db::default();
    let app = Router::new()
        .route("/members", get(members_page))
        .with_state(db.clone());
    let member = || {
        Request::get("/members")
            .header("x-session", "s1")
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..2 {
        let answer = app.clone().oneshot(member()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_eq!(db.calls(), 1, "the second member's request was a hit");
    assert_eq!(members_page::stats().hits, 1);
    let stranger = Request::get("/members").body(Body::empty()).unwrap();
    let answer = app.oneshot(stranger).await.unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::UNAUTHORIZED,
        "the guard runs before the stored page may answer"
    );
    assert_eq!(
        members_page::stats().hits,
        1,
        "a page the guard kept from answering is not counted as a hit"
    );
}

/// A page whose rendering holds a large buffer across an await, as a handler holding a
/// database row or a template's output does.
#[cache_page]
async fn large_render_page() -> String {
    let buffer = [7u8; 16 * 1024];
    tokio::task::yield_now().await;
    format!(
        "{}",
        buffer.iter().map(|&byte| usize::from(byte)).sum::<usize>()
    )
}

#[tokio::test]
async fn a_hit_does_not_carry_the_rendering_s_state() {
    use axum::handler::Handler;

    let request = || Request::get("/large").body(Body::empty()).unwrap();
    let rendered = Handler::<_, ()>::call(large_render_page, request(), ()).await;
    assert_eq!(rendered.status(), StatusCode::OK);
    let hit = Handler::<_, ()>::call(large_render_page, request(), ());
    // The handler's whole future, as axum boxes it: the rendering's 16 KiB are only
    // allocated on a miss, not moved through every hit.
    let size = size_of_val(&*hit);
    assert!(size < 4 * 1024, "a cached handler's future is {size} bytes");
    let hit = hit.await;
    assert_eq!(hit.headers()["x-cache"], "HIT");
}
