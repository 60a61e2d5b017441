//! [`RouteKeys`]: how many distinct keys each route's requests have, so that a route whose
//! requests are too unique for its cache (a query value per visitor, a header that
//! varies per client) shows up before its hit rate is looked at.
//!
//! Counted on misses only: every distinct key misses at least once, so the count is the
//! same and the hit path pays nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::MatchedPath;
use http::Request;

use super::hyperloglog::HyperLogLog;
use super::key::PageKey;

/// The most routes counted one by one; the requests of any further route are counted
/// together, so that a router without `MatchedPath` (every path a route) cannot grow the
/// census without bound.
const MOST_ROUTES: usize = 1_024;

/// Where the routes beyond [`MOST_ROUTES`] are counted.
const OTHER_ROUTES: &str = "(other routes)";

/// How many distinct keys the requests of one route had: see
/// [`PageCache::route_keys`](super::PageCache::route_keys).
///
/// ```
/// use cachemacro_runtime::{PageCache, RouteKeys};
///
/// fn too_unique(cache: &PageCache) -> Vec<RouteKeys> {
///     cache.route_keys().into_iter().filter(|route| route.distinct_keys > 10_000).collect()
/// }
/// assert!(too_unique(&PageCache::new()).is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteKeys {
    /// The route as axum matched it (`/books/{id}`), else the request's path; or
    /// `"(other routes)"` for the routes beyond the first 1 024.
    pub route: String,
    /// The estimated number of distinct keys (about 2 % off, rarely more than 5 %).
    pub distinct_keys: u64,
}

/// A distinct count per route.
#[derive(Default)]
pub(super) struct RouteCensus {
    routes: RwLock<HashMap<Box<str>, Arc<HyperLogLog>>>,
}

impl RouteCensus {
    /// Counts `key` under the route of `request`.
    pub(super) fn record<B>(&self, request: &Request<B>, key: &PageKey) {
        let route = match request.extensions().get::<MatchedPath>() {
            Some(matched) => matched.as_str(),
            None => request.uri().path(),
        };
        self.count(route).insert(key.request_hash());
    }

    fn count(&self, route: &str) -> Arc<HyperLogLog> {
        let known = self
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = known.get(route) {
            return Arc::clone(count);
        }
        drop(known);
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // One slot is kept for the overflow.
        let route = if routes.len() < MOST_ROUTES - 1 || routes.contains_key(route) {
            route
        } else {
            OTHER_ROUTES
        };
        Arc::clone(
            routes
                .entry(route.into())
                .or_insert_with(|| Arc::new(HyperLogLog::new())),
        )
    }

    /// Every route counted, most distinct keys first.
    pub(super) fn report(&self) -> Vec<RouteKeys> {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut report: Vec<RouteKeys> = routes
            .iter()
            .map(|(route, count)| RouteKeys {
                route: route.to_string(),
                distinct_keys: count.estimate(),
            })
            .collect();
        report.sort_by(|a, b| {
            b.distinct_keys
                .cmp(&a.distinct_keys)
                .then_with(|| a.route.cmp(&b.route))
        });
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn keys_are_counted_per_matched_route_else_per_path() {
        let census = RouteCensus::default();
        for id in 0..20 {
            let mut routed = request(&format!("/books/{id}"));
            routed.extensions_mut().insert(matched("/books/{id}"));
            census.record(&routed, &PageKey::from_uri(routed.uri().path()));
            census.record(&routed, &PageKey::from_uri(routed.uri().path()));
        }
        let plain = request("/about");
        census.record(&plain, &PageKey::from_uri("/about"));
        assert_eq!(
            census.report(),
            [
                RouteKeys {
                    route: "/books/{id}".to_owned(),
                    distinct_keys: 20
                },
                RouteKeys {
                    route: "/about".to_owned(),
                    distinct_keys: 1
                },
            ]
        );
    }

    #[test]
    fn routes_beyond_the_cap_are_counted_together() {
        let census = RouteCensus::default();
        for page in 0..MOST_ROUTES + 100 {
            let path = format!("/page/{page}");
            census.record(&request(&path), &PageKey::from_uri(&path));
        }
        let report = census.report();
        assert_eq!(report.len(), MOST_ROUTES);
        let other = report
            .iter()
            .find(|route| route.route == OTHER_ROUTES)
            .expect("an overflow entry");
        let overflow = 100 + 1;
        assert!(other.distinct_keys.abs_diff(overflow) <= 3, "{other:?}");
        // A route counted before the cap stays its own.
        census.record(&request("/page/0"), &PageKey::from_uri("/page/0?again"));
        let first = census
            .report()
            .into_iter()
            .find(|route| route.route == "/page/0");
        assert_eq!(first.map(|route| route.distinct_keys), Some(2));
    }

    #[test]
    fn a_cached_handler_counts_under_its_matched_route() {
        use axum::routing::get;
        use tower::ServiceExt;

        use crate::page::cache::PageCache;
        use crate::page::request::{serve_handler, HandlerPageCache, PageRequest};

        struct BookPages;
        impl HandlerPageCache for BookPages {
            fn page_cache() -> &'static PageCache {
                static PAGES: std::sync::OnceLock<PageCache> = std::sync::OnceLock::new();
                PAGES.get_or_init(PageCache::new)
            }
        }
        let handler = |request: PageRequest<BookPages>| async move {
            serve_handler(request, || async { "a book" }).await
        };
        let cache = BookPages::page_cache();
        let app = axum::Router::new().route("/books/{id}", get(handler));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for id in [1, 2, 3, 1, 2] {
            let request = request(&format!("/books/{id}")).map(|()| axum::body::Body::empty());
            runtime.block_on(app.clone().oneshot(request)).unwrap();
        }
        assert_eq!(
            cache.route_keys(),
            [RouteKeys {
                route: "/books/{id}".to_owned(),
                distinct_keys: 3
            }]
        );
    }

    /// A `MatchedPath` as axum's router inserts it: built by routing a request.
    fn matched(route: &str) -> MatchedPath {
        use axum::extract::FromRequestParts;
        use axum::routing::get;
        use tower::ServiceExt;

        let (sender, receiver) = std::sync::mpsc::channel();
        let app = axum::Router::new().route(
            route,
            get(move |request: axum::extract::Request| {
                let sender = sender.clone();
                async move {
                    let (mut parts, _) = request.into_parts();
                    let matched = MatchedPath::from_request_parts(&mut parts, &())
                        .await
                        .unwrap();
                    sender.send(matched).unwrap();
                }
            }),
        );
        let path = route.replace("{id}", "1");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(app.oneshot(request(&path).map(|()| axum::body::Body::empty())))
            .unwrap();
        receiver.recv().unwrap()
    }
}
