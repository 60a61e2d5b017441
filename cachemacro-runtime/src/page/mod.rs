//! Whole-page caching for axum 0.8 and tower (feature `axum`): the [`cache_page`]
//! attribute for one handler and [`PageCacheLayer`] for every route of a router.
//!
//! Both call the same core, [`PageCache::serve`]; its documentation lists the HTTP rules.
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
mod cache_control;
mod entry;
mod freshness;
mod hit_now;
mod hop_by_hop;
mod hyperloglog;
mod key;
mod layer;
mod mode;
mod page_store;
mod policy;
mod query_filter;
pub(crate) mod request;
mod request_fields;
mod route_census;
mod seconds_header;
mod serve;
mod unsafe_methods;
mod validators;
#[cfg(feature = "serde")]
mod wire;

pub use self::cache::PageCache;
pub use self::entry::CachedPage;
pub use self::key::PageKey;
pub use self::layer::{PageCacheFuture, PageCacheLayer, PageCacheService};
pub use self::mode::PageCacheMode;
pub use self::route_census::RouteKeys;

/// A header map of `(name, value)` pairs, repeated names appended: the responses and
/// requests the unit tests of the rules judge.
#[cfg(test)]
pub(crate) fn header_map(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, http::HeaderValue::from_static(value));
    }
    map
}
