use axum::{routing::get, Router};
use cachemacro_runtime::cache_page;

#[cache_page(ignore_query = ["utm_*", "fbclid", "ref?"], query = true)]
async fn landing() -> &'static str {
    "landing"
}

fn main() {
    let _app: Router = Router::new().route("/", get(landing));
}
