#![deny(warnings, unused_qualifications)]

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime as renamed_runtime;
use cachemacro_runtime::{cache_page, CachedPage, MemoryStore, PageKey};

#[allow(dead_code)]
mod core {}

#[derive(Clone)]
struct Db;

/// Docs and attributes stay on the handler.
#[cache_page(ttl = "15m", stale = "5m", vary = ["Accept-Language"], query = false, key_prefix = "books:")]
pub async fn book(Path(id): Path<u32>, State(_db): State<Db>) -> impl IntoResponse {
    Html(format!("{id}"))
}

#[cache_page(store = MemoryStore::<PageKey, CachedPage>::builder().capacity(10).build(), crate = "renamed_runtime")]
async fn search(
    Query(params): Query<Vec<(String, String)>>,
    body: String,
) -> Result<String, String> {
    let first = params.first().ok_or_else(|| "no parameters".to_owned())?;
    Ok(format!("{first:?} {body}"))
}

#[cache_page]
async fn no_arguments() -> &'static str {
    "home"
}

fn main() {
    let _ = renamed_runtime::PageCache::new();
    let _app: Router = Router::new()
        .route("/books/{id}", get(book))
        .route("/search", get(search).post(search))
        .route("/", get(no_arguments))
        .with_state(Db);
    let _: bool = book::invalidate("/books/1");
    book::clear();
    let _ = search::stats();
}
