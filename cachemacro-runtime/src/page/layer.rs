//! [`PageCacheLayer`]: the per-site page cache, a tower layer over [`PageCache::serve`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::cache::PageCache;
use super::entry::CachedPage;
use super::key::PageKey;
use super::mode::PageCacheMode;
use crate::store::Store;

/// Caches the pages of every `GET` route below it (axum's `Router::layer`, or any tower
/// stack): Django's per-site cache middleware, with the HTTP rules of [`PageCache`].
///
/// The builder methods are those of [`PageCache`]; [`cache`](PageCacheLayer::cache)
/// gives the cache itself, to invalidate pages or read its stats.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use cachemacro_runtime::PageCacheLayer;
/// use tower::ServiceExt;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let layer = PageCacheLayer::new().ttl(Duration::from_secs(900));
/// let cache = layer.cache().clone();
/// let app = Router::new().route("/books/{id}", get(|| async { "a book" })).layer(layer);
///
/// let request = || http::Request::get("/books/312").body(axum::body::Body::empty()).unwrap();
/// let first = app.clone().oneshot(request()).await.unwrap();
/// let again = app.oneshot(request()).await.unwrap();
/// assert_eq!(first.headers()["x-cache"], "MISS");
/// assert_eq!(again.headers()["x-cache"], "HIT");
/// assert!(cache.invalidate("/books/312"));
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct PageCacheLayer {
    cache: PageCache,
}

impl PageCacheLayer {
    /// A layer over a new in-memory page cache with the defaults of [`PageCache::new`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> PageCacheLayer {
        PageCacheLayer {
            cache: PageCache::new(),
        }
    }

    /// A layer over a page cache in `store`; see [`PageCache::with_store`].
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, PageCacheLayer};
    ///
    /// let layer = PageCacheLayer::with_store(MemoryStore::builder().capacity(1_000).build());
    /// # let _ = layer;
    /// ```
    pub fn with_store<S: Store<PageKey, CachedPage> + 'static>(store: S) -> PageCacheLayer {
        PageCacheLayer {
            cache: PageCache::with_store(store),
        }
    }

    /// A layer over a new in-memory page cache with the rules of an RFC 9111 shared
    /// cache, for a reverse proxy; see [`PageCacheMode`].
    ///
    /// ```
    /// use cachemacro_runtime::{PageCacheLayer, PageCacheMode};
    ///
    /// let layer = PageCacheLayer::shared();
    /// assert_eq!(layer.cache().current_mode(), PageCacheMode::Shared);
    /// ```
    pub fn shared() -> PageCacheLayer {
        PageCacheLayer {
            cache: PageCache::shared(),
        }
    }

    /// See [`PageCache::mode`].
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, PageCacheLayer, PageCacheMode};
    ///
    /// let layer = PageCacheLayer::with_store(MemoryStore::new()).mode(PageCacheMode::Shared);
    /// # let _ = layer;
    /// ```
    pub fn mode(self, mode: PageCacheMode) -> PageCacheLayer {
        self.map(|cache| cache.mode(mode))
    }

    /// See [`PageCache::honour_request_no_cache`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new().honour_request_no_cache(true);
    /// # let _ = layer;
    /// ```
    pub fn honour_request_no_cache(self, honour: bool) -> PageCacheLayer {
        self.map(|cache| cache.honour_request_no_cache(honour))
    }

    /// The page cache this layer serves from.
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new();
    /// assert_eq!(layer.cache().stats().hits, 0);
    /// ```
    pub fn cache(&self) -> &PageCache {
        &self.cache
    }

    /// See [`PageCache::ttl`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = cachemacro_runtime::PageCacheLayer::new().ttl(Duration::from_secs(900));
    /// # let _ = layer;
    /// ```
    pub fn ttl(self, ttl: Duration) -> PageCacheLayer {
        self.map(|cache| cache.ttl(ttl))
    }

    /// See [`PageCache::stale`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let layer = cachemacro_runtime::PageCacheLayer::new().stale(Duration::from_secs(300));
    /// # let _ = layer;
    /// ```
    pub fn stale(self, stale: Duration) -> PageCacheLayer {
        self.map(|cache| cache.stale(stale))
    }

    /// See [`PageCache::vary`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new().vary(["accept-language"]);
    /// # let _ = layer;
    /// ```
    pub fn vary<I>(self, names: I) -> PageCacheLayer
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.map(|cache| cache.vary(names))
    }

    /// See [`PageCache::query`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new().query(false);
    /// # let _ = layer;
    /// ```
    pub fn query(self, include: bool) -> PageCacheLayer {
        self.map(|cache| cache.query(include))
    }

    /// See [`PageCache::key_prefix`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new().key_prefix("site:");
    /// # let _ = layer;
    /// ```
    pub fn key_prefix(self, prefix: &str) -> PageCacheLayer {
        self.map(|cache| cache.key_prefix(prefix))
    }

    /// See [`PageCache::max_body`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new().max_body(64 * 1024);
    /// # let _ = layer;
    /// ```
    pub fn max_body(self, bytes: u64) -> PageCacheLayer {
        self.map(|cache| cache.max_body(bytes))
    }

    /// See [`PageCache::statuses`].
    ///
    /// ```
    /// use http::StatusCode;
    ///
    /// let layer = cachemacro_runtime::PageCacheLayer::new().statuses([StatusCode::OK, StatusCode::GONE]);
    /// # let _ = layer;
    /// ```
    pub fn statuses(self, statuses: impl IntoIterator<Item = StatusCode>) -> PageCacheLayer {
        self.map(|cache| cache.statuses(statuses))
    }

    /// See [`PageCache::ignore_query`].
    ///
    /// ```
    /// let layer = cachemacro_runtime::PageCacheLayer::new().ignore_query(["utm_*", "fbclid"]);
    /// # let _ = layer;
    /// ```
    pub fn ignore_query<I>(self, patterns: I) -> PageCacheLayer
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.map(|cache| cache.ignore_query(patterns))
    }

    fn map(self, change: impl FnOnce(PageCache) -> PageCache) -> PageCacheLayer {
        PageCacheLayer {
            cache: change(self.cache),
        }
    }
}

impl From<PageCache> for PageCacheLayer {
    fn from(cache: PageCache) -> Self {
        PageCacheLayer { cache }
    }
}

impl<S> Layer<S> for PageCacheLayer {
    type Service = PageCacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PageCacheService {
            inner,
            cache: self.cache.clone(),
        }
    }
}

/// The service [`PageCacheLayer`] wraps around the routes: answers from the page cache
/// and calls the inner service on a miss.
///
/// ```
/// use axum::{body::Body, routing::get, Router};
/// use cachemacro_runtime::{PageCacheLayer, PageCacheService};
/// use tower::Layer;
///
/// let service: PageCacheService<Router> = PageCacheLayer::new().layer(Router::new().route("/", get(|| async { "home" })));
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct PageCacheService<S> {
    inner: S,
    cache: PageCache,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PageCacheService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = PageCacheFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if let Some(hit) = self
            .cache
            .answer_now(request.method(), request.uri(), request.headers())
        {
            return PageCacheFuture(Answer::Ready(Some(hit)));
        }
        // The instance that was polled ready is the one that must be called; leave a
        // fresh clone behind for the next request (tower's usual dance).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let cache = self.cache.clone();
        PageCacheFuture(Answer::Serving(Box::pin(async move {
            cache
                .serve_past_hit(request, |request| async move {
                    inner
                        .call(request)
                        .await
                        .map(|response| response.map(Body::new))
                })
                .await
        })))
    }
}

/// The response future of [`PageCacheService`]: ready at once for a hit on a page held
/// in process, the whole page-cache algorithm otherwise.
///
/// ```
/// use axum::{body::Body, routing::get, Router};
/// use cachemacro_runtime::{PageCacheFuture, PageCacheLayer};
/// use http::Request;
/// use tower::{Layer, Service};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut service = PageCacheLayer::new().layer(Router::new().route("/", get(|| async { "home" })));
/// let answer: PageCacheFuture<_> = service.call(Request::get("/").body(Body::empty()).unwrap());
/// assert_eq!(answer.await.unwrap().headers()["x-cache"], "MISS");
/// # });
/// ```
pub struct PageCacheFuture<E>(Answer<E>);

enum Answer<E> {
    /// Taken by the first poll.
    Ready(Option<Response>),
    Serving(Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>),
}

impl<E> Future for PageCacheFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Answer::Ready(hit) => Poll::Ready(Ok(hit
                .take()
                .expect("a page cache future is not polled after it completed"))),
            Answer::Serving(serving) => serving.as_mut().poll(cx),
        }
    }
}

impl<E> std::fmt::Debug for PageCacheFuture<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Answer::Ready(_) => "PageCacheFuture(ready)",
            Answer::Serving(_) => "PageCacheFuture(serving)",
        })
    }
}
