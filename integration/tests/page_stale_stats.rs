//! A page served stale while another request re-renders it counts in `stats().stale`
//! (and in `hits`, as a stale memoized value does); it used to count as a plain hit only.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use cachemacro_runtime::PageCache;
use tokio::sync::Barrier;

/// A handler whose second render stops until the test has been answered stale.
struct Handler {
    renders: AtomicUsize,
    entered: Barrier,
    release: Barrier,
}

impl Handler {
    async fn render(&self) -> Result<Response, Infallible> {
        let run = self.renders.fetch_add(1, Ordering::SeqCst) + 1;
        if run == 2 {
            self.entered.wait().await;
            self.release.wait().await;
        }
        Ok(Response::new(Body::from(format!("render {run}"))))
    }
}

async fn x_cache(cache: &PageCache, handler: &Arc<Handler>) -> String {
    let handler = Arc::clone(handler);
    let response = cache
        .serve(Request::get("/page").body(()).unwrap(), |_| async move {
            handler.render().await
        })
        .await
        .unwrap();
    response.headers()["x-cache"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_served_stale_counts_as_stale_and_as_a_hit() {
    // A short TTL with a long stale window: after the sleep the page is surely expired
    // and surely still within the window, however slow the machine.
    let cache = PageCache::new()
        .ttl(Duration::from_millis(200))
        .stale(Duration::from_secs(3600));
    let handler = Arc::new(Handler {
        renders: AtomicUsize::new(0),
        entered: Barrier::new(2),
        release: Barrier::new(2),
    });
    assert_eq!(x_cache(&cache, &handler).await, "MISS");
    tokio::time::sleep(Duration::from_millis(600)).await;

    let rerender = tokio::spawn({
        let (cache, handler) = (cache.clone(), Arc::clone(&handler));
        async move { x_cache(&cache, &handler).await }
    });
    handler.entered.wait().await;
    for _ in 0..3 {
        assert_eq!(x_cache(&cache, &handler).await, "STALE");
    }
    handler.release.wait().await;
    assert_eq!(rerender.await.unwrap(), "MISS");
    assert_eq!(x_cache(&cache, &handler).await, "HIT");

    let stats = cache.stats();
    assert_eq!(stats.stale, 3, "{stats:?}");
    assert_eq!((stats.hits, stats.misses), (4, 2), "{stats:?}");
}
