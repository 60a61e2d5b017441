use axum::{routing::get, Router};
use cachemacro_runtime::cache_page;

#[cache_page(ttl = "15x", colour = 1, stale = 0, query = "no")]
async fn book() -> &'static str {
    "book"
}

fn main() {
    // The handler is still emitted, so this line adds no error of its own.
    let _app: Router = Router::new().route("/", get(book));
}
