//! Whole-page caching for axum 0.8 and tower (feature `axum`): the [`cache_page`]
//! attribute for one handler and [`PageCacheLayer`] for every route of a router.
//!
//! Both call the same core, [`PageCache::serve`], which implements the HTTP rules:
//!
//! * Only `GET` and `HEAD` are served from or stored in the cache; a `HEAD` is answered
//!   from the `GET` entry (the handler renders a `GET`, the body is dropped). Every other
//!   method passes through untouched.
//! * The key ([`PageKey`]) is method-independent: key prefix, host, path, the query
//!   parameters in a canonical order, and the values of every header named by the `vary`
//!   option or by the response's `Vary`. (Not the scheme: behind a TLS-terminating proxy
//!   a server cannot see it, and `http`/`https` serve the same page.) It is a structure, not a concatenation, so
//!   two different requests never share a key.
//! * Stored: responses whose status is in the configured set (default: `200`) and whose
//!   body has a known size up to the limit (default 1 MiB; streaming bodies pass through).
//!   Never stored: a response with `Set-Cookie`; `Cache-Control: private`, `no-store` or
//!   `no-cache`; `Vary: *`; a response to a request carrying `Authorization` unless the
//!   response says `public` or `s-maxage`.
//! * Stamped on cacheable responses: `Cache-Control: max-age=<remaining>` and `Expires`
//!   (unless the handler set them), a strong `ETag` (unless the handler set one), `Age`
//!   on hits and `x-cache: HIT | MISS | STALE`. A matching `If-None-Match` gets
//!   `304 Not Modified` without a body.
//! * Single-flight per key: concurrent requests for a cold page run the handler once.
//!   With a `stale` window, an expired page is served at once (`x-cache: STALE`) while
//!   one request re-renders it.
//!
//! * Invalidation wins over a render in flight: [`PageCache::invalidate`] (or
//!   [`invalidate_async`](PageCache::invalidate_async) from async code) while the page is
//!   being rendered lets that render answer the requests waiting for it, but it is not
//!   stored, so the next request renders the page from the changed data.
//!
//! Request `Cache-Control` directives (`no-cache` from a browser's reload) are ignored,
//! as reverse proxies do by default: a client must not be able to bypass a shared cache
//! and hammer the origin. Invalidate with [`PageCache::invalidate`] instead.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use cachemacro_runtime::PageCacheLayer;
//!
//! async fn home() -> &'static str {
//!     "welcome"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(home))
//!     .layer(PageCacheLayer::new().ttl(Duration::from_secs(900)));
//! ```
//!
//! [`cache_page`]: crate::cache_page

mod cache;
mod entry;
mod etag;
mod key;
mod layer;
mod page_store;
mod policy;
pub(crate) mod request;
mod serve;
#[cfg(feature = "serde")]
mod wire;

pub use self::cache::PageCache;
pub use self::entry::CachedPage;
pub use self::key::PageKey;
pub use self::layer::{PageCacheLayer, PageCacheService};
