//! `#[cache_page]` and `PageCacheLayer` over the persistent stores: pages
//! survive a restart of the application when they live in a `DiskStore`, and every
//! instance of it answers from a `SqlStore` table (a real PostgreSQL the test starts).

#![cfg(all(feature = "axum", feature = "disk"))]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, DiskStore, PageCacheLayer};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "cachemacro-page-persistent-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fetch(app: &Router, uri: &str) -> (String, String) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (x_cache, String::from_utf8(body.to_vec()).unwrap())
}

fn app(store: DiskStore, renders: &Arc<AtomicUsize>) -> Router {
    let renders = Arc::clone(renders);
    Router::new()
        .route(
            "/books/312",
            get(move || {
                let run = renders.fetch_add(1, Ordering::SeqCst) + 1;
                async move { format!("Emma, render {run}") }
            }),
        )
        .layer(PageCacheLayer::with_store(store))
}

#[tokio::test]
async fn pages_in_a_disk_store_survive_a_restart_of_the_app() {
    let dir = TempDir::new("layer");
    let renders = Arc::new(AtomicUsize::new(0));

    let first_run = app(DiskStore::open(&dir.0).unwrap(), &renders);
    assert_eq!(fetch(&first_run, "/books/312").await.0, "MISS");
    assert_eq!(fetch(&first_run, "/books/312").await.0, "HIT");
    drop(first_run); // closes the file, as stopping the app would

    let second_run = app(DiskStore::open(&dir.0).unwrap(), &renders);
    let (x_cache, body) = fetch(&second_run, "/books/312").await;
    assert_eq!(
        x_cache, "HIT",
        "the page stored before the restart is served"
    );
    assert_eq!(body, "Emma, render 1");
    assert_eq!(renders.load(Ordering::SeqCst), 1);
}

static MACRO_DIR: OnceLock<PathBuf> = OnceLock::new();
static MACRO_RENDERS: AtomicUsize = AtomicUsize::new(0);

fn disk_pages() -> DiskStore {
    DiskStore::open(MACRO_DIR.get().expect("the test sets the directory first")).unwrap()
}

#[cache_page(ttl = "1h", store = disk_pages())]
async fn author(axum::extract::Path(id): axum::extract::Path<u32>) -> String {
    let run = MACRO_RENDERS.fetch_add(1, Ordering::SeqCst) + 1;
    format!("author {id}, render {run}")
}

#[tokio::test]
async fn cache_page_takes_a_disk_store() {
    let dir = TempDir::new("macro");
    MACRO_DIR.set(dir.0.clone()).unwrap();
    let app: Router = Router::new().route("/authors/{id}", get(author));
    assert_eq!(
        fetch(&app, "/authors/7").await,
        ("MISS".to_owned(), "author 7, render 1".to_owned())
    );
    assert_eq!(
        fetch(&app, "/authors/7").await,
        ("HIT".to_owned(), "author 7, render 1".to_owned())
    );
    assert_eq!(
        author::stats().entries,
        1,
        "one page in the handler's namespace"
    );
    assert!(author::invalidate("/authors/7"));
    assert_eq!(fetch(&app, "/authors/7").await.0, "MISS");
}

#[cfg(feature = "postgres")]
mod sql {
    use super::*;
    use cachemacro_runtime::SqlStore;
    use std::time::Duration;

    fn instance(url: &str, renders: &Arc<AtomicUsize>) -> Router {
        let store = SqlStore::builder(url)
            .namespace("pages")
            .operation_timeout(Duration::from_secs(5))
            .create_table(true)
            .build()
            .unwrap();
        let renders = Arc::clone(renders);
        Router::new()
            .route(
                "/books/312",
                get(move || {
                    let run = renders.fetch_add(1, Ordering::SeqCst) + 1;
                    async move { format!("Emma, render {run}") }
                }),
            )
            .layer(PageCacheLayer::with_store(store))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_in_a_sql_table_are_shared_by_every_instance() {
        let server = cachemacro_test_support::postgres::PostgresServer::start();
        let renders = Arc::new(AtomicUsize::new(0));
        let (one, two) = (
            instance(&server.url(), &renders),
            instance(&server.url(), &renders),
        );
        assert_eq!(fetch(&one, "/books/312").await.0, "MISS");
        let (x_cache, body) = fetch(&two, "/books/312").await;
        assert_eq!((x_cache.as_str(), body.as_str()), ("HIT", "Emma, render 1"));
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }
}
