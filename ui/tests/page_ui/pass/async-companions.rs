#![deny(warnings, unused_qualifications)]
//! The async companions of a handler are `Send` and can be awaited in another handler,
//! as an invalidation after a write is.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use cachemacro_runtime::{cache_page, CachedPage, MemoryStore, PageKey};

#[allow(dead_code)]
mod core {}

#[cache_page(ttl = "15m")]
async fn book(Path(id): Path<u32>) -> String {
    format!("book {id}")
}

#[cache_page(store = MemoryStore::<PageKey, CachedPage>::builder().capacity(10).build())]
async fn shelf() -> &'static str {
    "shelf"
}

/// A write invalidates the cached pages it changed without blocking the executor.
async fn update_book(Path(id): Path<u32>) -> &'static str {
    let _: bool = book::invalidate_async(&format!("/books/{id}")).await;
    shelf::clear_async().await;
    "updated"
}

fn assert_send<T: Send>(_: T) {}

#[tokio::main]
async fn main() {
    let _app: Router = Router::new()
        .route("/books/{id}", get(book))
        .route("/books/{id}", post(update_book))
        .route("/shelf", get(shelf));
    assert_send(book::invalidate_async("/books/1"));
    assert_send(book::clear_async());
    // Before the first request there is no page cache, and nothing to remove.
    assert!(!book::invalidate_async("/books/1").await);
    assert!(!shelf::invalidate_async("/shelf").await);
    book::clear_async().await;
    assert_eq!(book::stats().hits, 0);
}
