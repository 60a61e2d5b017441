//! An invalidation wins over a page render in flight: a render that read the data before
//! it changed answers its own request, but is not stored, so the request after the
//! invalidation renders from the new data. Also through the async `invalidate_async` and
//! `clear_async`, and for a page that varies on a request header, whose render writes the
//! variant index again.
//!
//! Barriers pin the order: the handler has read the data, then the data changes and the
//! page is invalidated, then the handler returns.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use cachemacro_runtime::PageCache;
use http_body_util::BodyExt;
use tokio::sync::Barrier;

/// The data behind a page, and the two points its next gated render stops at.
struct Shelf {
    price: AtomicU64,
    gated: AtomicBool,
    read: Barrier,
    changed: Barrier,
}

impl Shelf {
    fn new() -> Arc<Shelf> {
        Arc::new(Shelf {
            price: AtomicU64::new(1000),
            gated: AtomicBool::new(false),
            read: Barrier::new(2),
            changed: Barrier::new(2),
        })
    }

    async fn render(&self) -> Result<Response, Infallible> {
        let price = self.price.load(Ordering::SeqCst) + 312;
        if self.gated.swap(false, Ordering::SeqCst) {
            self.read.wait().await;
            self.changed.wait().await;
        }
        Ok(Response::new(Body::from(price.to_string())))
    }
}

/// The `x-cache` header and the body of the answer to `GET /books/312`.
async fn get(cache: &PageCache, shelf: &Arc<Shelf>, language: &str) -> (String, String) {
    let request = Request::get("http://shop.example/books/312")
        .header("accept-language", language)
        .body(())
        .unwrap();
    let shelf = Arc::clone(shelf);
    let response = cache
        .serve(request, |_| async move { shelf.render().await })
        .await
        .unwrap();
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (x_cache, String::from_utf8(body.to_vec()).unwrap())
}

/// Starts a render that stops after reading the data, changes the data while it waits,
/// runs `invalidate`, lets the render finish and returns what it answered.
async fn render_overtaken_by<Invalidation>(
    cache: &PageCache,
    shelf: &Arc<Shelf>,
    language: &'static str,
    invalidate: impl FnOnce() -> Invalidation,
) -> (String, String)
where
    Invalidation: std::future::Future<Output = ()>,
{
    shelf.gated.store(true, Ordering::SeqCst);
    let first = tokio::spawn({
        let (cache, shelf) = (cache.clone(), Arc::clone(shelf));
        async move { get(&cache, &shelf, language).await }
    });
    shelf.read.wait().await;
    shelf.price.store(2000, Ordering::SeqCst);
    invalidate().await;
    shelf.changed.wait().await;
    first.await.unwrap()
}

const PAGE: &str = "http://shop.example/books/312";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_render_is_not_undone_by_it() {
    let (cache, shelf) = (PageCache::new(), Shelf::new());
    let first = render_overtaken_by(&cache, &shelf, "en", || {
        assert!(!cache.invalidate(PAGE), "nothing stored yet");
        async {}
    })
    .await;
    assert_eq!(first, ("MISS".into(), "1312".into()), "its request gets it");
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("MISS".into(), "2312".into())
    );
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("HIT".into(), "2312".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_invalidation_during_a_render_is_not_undone_by_it() {
    let (cache, shelf) = (PageCache::new(), Shelf::new());
    let first = render_overtaken_by(&cache, &shelf, "en", || async {
        assert!(!cache.invalidate_async(PAGE).await);
    })
    .await;
    assert_eq!(first.1, "1312");
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("MISS".into(), "2312".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_during_a_render_is_not_undone_by_it() {
    let (cache, shelf) = (PageCache::new(), Shelf::new());
    let first = render_overtaken_by(&cache, &shelf, "en", || {
        cache.clear();
        async {}
    })
    .await;
    assert_eq!(first.1, "1312");
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("MISS".into(), "2312".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_clear_during_a_render_is_not_undone_by_it() {
    let (cache, shelf) = (PageCache::new(), Shelf::new());
    let first = render_overtaken_by(&cache, &shelf, "en", || cache.clear_async()).await;
    assert_eq!(first.1, "1312");
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("MISS".into(), "2312".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_variant_render_brings_no_old_variant_back() {
    let cache = PageCache::new().vary(["accept-language"]);
    let shelf = Shelf::new();
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("MISS".into(), "1312".into())
    );
    assert_eq!(get(&cache, &shelf, "en").await.0, "HIT");
    // The French render found the variant index, so its flight is the French variant's;
    // had it stored, it would have written the index with its old generation again and
    // made the old English variant reachable.
    let french = render_overtaken_by(&cache, &shelf, "fr", || async {
        assert!(cache.invalidate_async(PAGE).await, "the index was stored");
    })
    .await;
    assert_eq!(french.1, "1312");
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("MISS".into(), "2312".into())
    );
    assert_eq!(
        get(&cache, &shelf, "fr").await,
        ("MISS".into(), "2312".into())
    );
    assert_eq!(
        get(&cache, &shelf, "fr").await,
        ("HIT".into(), "2312".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_another_page_leaves_the_render_stored() {
    let (cache, shelf) = (PageCache::new(), Shelf::new());
    let first = render_overtaken_by(&cache, &shelf, "en", || {
        cache.invalidate("http://shop.example/books/313");
        async {}
    })
    .await;
    assert_eq!(first.1, "1312");
    assert_eq!(
        get(&cache, &shelf, "en").await,
        ("HIT".into(), "1312".into())
    );
}
