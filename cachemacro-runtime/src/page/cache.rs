//! [`PageCache`]: the settings of a page cache (TTL, stale window, key options, what is
//! stored), its store, and the invalidation of its pages. Requests are answered by
//! [`PageCache::serve`], in `serve.rs`.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, StatusCode};

use super::entry::CachedPage;
use super::key::PageKey;
use super::mode::PageCacheMode;
use super::page_store::PageStore;
use super::policy::PagePolicy;
use super::route_census::{RouteCensus, RouteKeys};
use crate::flight::FlightCore;
use crate::stats::CacheStats;
use crate::store::{MemoryStore, Store};

/// Where this process starts numbering variant generations. A store shared by several
/// processes holds the generations of all of them: starting from the clock's nanoseconds
/// keeps one process from reusing a generation another one invalidated, which would bring
/// its old variants back.
fn first_generation() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64)
        .max(1)
}

/// What the clones of a page cache share: the store, the flights of the pages being
/// rendered, the counters, and the source of variant generations.
pub(super) struct PageStorage {
    pub(super) store: Box<dyn PageStore>,
    pub(super) core: FlightCore<PageKey, CachedPage>,
    /// Source of variant generations; see `PageKey::variant`.
    pub(super) generations: AtomicU64,
    /// Distinct keys per route, counted on misses.
    pub(super) routes: RouteCensus,
}

/// A page cache: its rules (TTL, stale window, key options, what is stored) and its
/// store. Clones share the store; the builder methods change only the clone they are
/// called on.
///
/// [`PageCacheLayer`](super::PageCacheLayer) puts one in front of a router;
/// `#[cache_page]` gives each handler its own. [`serve`](PageCache::serve) is the whole
/// algorithm.
///
/// # HTTP rules
///
/// [`serve`](PageCache::serve), the core that `#[cache_page]` and [`PageCacheLayer`](super::PageCacheLayer) both call, follows these rules:
///
/// The rules are RFC 9111's, in one of two modes ([`PageCacheMode`]): the application's
/// own cache (the default) or a shared cache in front of an upstream
/// ([`PageCache::shared`]). RFC sections are given in brackets.
///
/// * Only `GET` and `HEAD` are served from or stored in the cache; a `HEAD` is answered
///   from the `GET` entry (the handler renders a `GET`, the body is dropped). `OPTIONS`,
///   `TRACE` and requests asking for a protocol `Upgrade` (WebSocket) pass through
///   untouched. Any other method is unsafe: after a `2xx` or `3xx` answer, the page of
///   its URI and the same-host URIs in `Location` and `Content-Location` are invalidated
///   before the response goes back (§4.4), so the form-update case of a web app never
///   shows the old page.
/// * The key ([`PageKey`]) is method-independent: key prefix, scheme (from the URI, else
///   `X-Forwarded-Proto` or `Forwarded`), host, path, the query parameters in a canonical
///   order less those of [`ignore_query`](PageCache::ignore_query), and the normalised
///   values of every header named by the `vary` option or by the response's `Vary`. It
///   is a structure, not a concatenation, so two different requests never share a key.
/// * Stored: responses whose status is in the configured set (default: `200`; a shared
///   cache: any final status with freshness information) and whose body has a known size
///   up to the limit (default 1 MiB; streaming bodies pass through). Never stored: a
///   response with `Set-Cookie`; `Cache-Control: private` or `no-store`; `Vary: *`; a
///   response to a request with `Cache-Control: no-store`, or carrying `Authorization`
///   unless the response says `public` or `s-maxage` (a shared cache also accepts
///   `must-revalidate`, §3.5).
/// * Freshness (§4.2): `s-maxage`, else `max-age`, else `Expires − Date` (all three date
///   forms of RFC 9110 §5.6.7; an invalid `Expires` such as `0` is already stale), else
///   the TTL (a shared cache: 10 % of the time since `Last-Modified` for heuristically
///   cacheable statuses, else not stored). The age is
///   `max(apparent_age, Age) + resident_time` (§4.2.3), so a response that arrives with
///   `Age` at or over its `max-age` is stale at once. A response stale on arrival, or
///   marked `no-cache`, is kept only if it has a validator, to be revalidated.
/// * Revalidation (§4.3): a stale page with the inner service's `ETag` or
///   `Last-Modified` is confirmed with a conditional request (`If-None-Match`,
///   `If-Modified-Since`); a `304 Not Modified` updates the stored headers and freshness
///   and the stored body answers (`x-cache: REVALIDATED`), so a handler that answers
///   conditional requests (axum's can) does no rendering. `must-revalidate` and
///   `proxy-revalidate` forbid serving the page stale.
/// * Headers on the answers: `Age` (the current age) on every hit, the inner `Age` on a
///   miss, `x-cache: HIT | MISS | STALE | REVALIDATED`, a `Date` when the response had
///   none. The application's cache also stamps `Cache-Control: max-age=<remaining>` and
///   `Expires` (unless the handler set them) and a strong `ETag` (unless the handler set
///   one); a shared cache forwards the upstream's headers as they are. A client whose
///   `If-None-Match` (or, without it, `If-Modified-Since`) matches gets
///   `304 Not Modified` without a body. Hop-by-hop fields (`Connection` and the fields it
///   names, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`, `Proxy-*`, `Trailer`) are
///   neither stored nor sent on the cache's answers.
/// * Single-flight per key: concurrent requests for a cold (or revalidating) page run
///   the handler once. With a `stale` window, an expired page is served at once
///   (`x-cache: STALE`) while one request re-renders or revalidates it.
/// * The stale extensions (RFC 5861): a response's `stale-while-revalidate=<s>` sets that
///   window for its own page, in place of the cache's `stale` setting (the resource knows
///   best how stale it may be shown). A response's `stale-if-error=<s>` lets its page
///   answer, stale (`x-cache: STALE`), for that long past its freshness when refreshing it
///   fails: the inner service answers `500`, `502`, `503` or `504`, or fails; the page
///   stays stored, so the next request tries again. `must-revalidate` overrides both.
/// * Invalidation wins over a render in flight: [`invalidate`](PageCache::invalidate) (or
///   [`invalidate_async`](PageCache::invalidate_async) from async code) while the page is
///   being rendered lets that render answer the requests waiting for it, but it is not
///   stored, so the next request renders the page from the changed data.
/// * Request directives (§5.2.1): `max-stale`, `min-fresh`, `only-if-cached` (`504` when
///   nothing stored may answer) and `no-store` are always honoured: they never make the
///   handler render a page the cache could serve. `no-cache`, `max-age` and
///   `Pragma: no-cache` would: a browser's reload sends `max-age=0`, and any script can
///   send `no-cache` on every request to load the database at will. They are ignored
///   unless [`honour_request_no_cache`](PageCache::honour_request_no_cache) is on, as
///   Varnish and most CDNs do. Invalidate with [`invalidate`](PageCache::invalidate)
///   instead.
///
/// # Out of scope
///
/// An in-application cache sees requests after the server has parsed them and answers
/// them in-process, so some of the RFC does not apply or is left to other layers:
///
/// * `CDN-Cache-Control` and other targeted fields (RFC 9213) address caches between the
///   application and the client; this cache is the application's, and reads the
///   general `Cache-Control`.
/// * Partial content (`Range`, `206`, §3.3–3.4): only whole responses are stored; range
///   requests are answered whole or passed through by the inner service.
/// * `stale-if-error` as a request directive (RFC 5861 §4): a client cannot ask for a
///   stale page on failure; the response decides. A stale page is served by the request
///   that tried the refresh, or by the ones waiting on it: no refresh runs in the
///   background of an answered request.
/// * `no-cache="field"` and `private="field"` with field names are read as the whole
///   response (the safe reading, §5.2.2.4 and §5.2.2.7 allow it).
/// * `Warning` (obsoleted by RFC 9111) is never sent.
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::PageCache;
///
/// let cache = PageCache::new()
///     .ttl(Duration::from_secs(15 * 60))
///     .stale(Duration::from_secs(5 * 60))
///     .vary(["accept-language"])
///     .max_body(256 * 1024);
/// assert!(!cache.invalidate("http://shop.example/books/312"));
/// ```
#[derive(Clone)]
pub struct PageCache {
    pub(super) policy: Arc<PagePolicy>,
    pub(super) storage: Arc<PageStorage>,
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache::new()
    }
}

impl fmt::Debug for PageCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageCache")
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

impl PageCache {
    /// A page cache over a new in-memory store, with the defaults: 10 minutes TTL, no
    /// stale window, status 200 only, bodies up to 1 MiB, query string in the key.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new();
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn new() -> PageCache {
        PageCache::with_store(MemoryStore::<PageKey, CachedPage>::new())
    }

    /// A page cache over `store`: any [`Store`] of [`PageKey`] to [`CachedPage`].
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, PageCache};
    ///
    /// let cache = PageCache::with_store(MemoryStore::builder().capacity(10_000).build());
    /// # let _ = cache;
    /// ```
    pub fn with_store<S: Store<PageKey, CachedPage> + 'static>(store: S) -> PageCache {
        PageCache {
            policy: Arc::new(PagePolicy::default()),
            storage: Arc::new(PageStorage {
                store: Box::new(store),
                core: FlightCore::new("page cache"),
                generations: AtomicU64::new(first_generation()),
                routes: RouteCensus::default(),
            }),
        }
    }

    /// A page cache with the rules of an RFC 9111 shared cache, for a layer in front of
    /// an upstream; see [`PageCacheMode`] for how the two modes differ.
    ///
    /// ```
    /// use cachemacro_runtime::{PageCache, PageCacheMode};
    ///
    /// assert_eq!(PageCache::shared().current_mode(), PageCacheMode::Shared);
    /// ```
    pub fn shared() -> PageCache {
        PageCache::new().mode(PageCacheMode::Shared)
    }

    /// Which rules apply: the application's own cache (the default) or a shared cache.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, PageCache, PageCacheMode};
    ///
    /// let cache = PageCache::with_store(MemoryStore::new()).mode(PageCacheMode::Shared);
    /// # let _ = cache;
    /// ```
    pub fn mode(mut self, mode: PageCacheMode) -> PageCache {
        Arc::make_mut(&mut self.policy).mode = mode;
        self
    }

    /// The mode this cache was built with.
    ///
    /// ```
    /// use cachemacro_runtime::{PageCache, PageCacheMode};
    ///
    /// assert_eq!(PageCache::new().current_mode(), PageCacheMode::Application);
    /// ```
    pub fn current_mode(&self) -> PageCacheMode {
        self.policy.mode
    }

    /// Whether a client's `Cache-Control: no-cache`, `max-age` or `Pragma: no-cache`
    /// may make the cache render or revalidate a page it could serve (default: `false`).
    ///
    /// A browser's reload sends `max-age=0`, and any script can send `no-cache` on every
    /// request: obeying them lets clients load the handlers at will, so they are
    /// ignored by default, as Varnish and most CDNs do. `max-stale`, `min-fresh`,
    /// `only-if-cached` and `no-store` never cost a render of a page the cache could
    /// serve, and are always honoured.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new().honour_request_no_cache(true);
    /// # let _ = cache;
    /// ```
    pub fn honour_request_no_cache(mut self, honour: bool) -> PageCache {
        Arc::make_mut(&mut self.policy).honour_request_no_cache = honour;
        self
    }

    /// How long a page stays fresh when the response sets no `max-age`, `s-maxage` or
    /// `Expires` of its own (default: 10 minutes). A shared cache uses no such default
    /// (see [`PageCacheMode`]); there, the TTL only says how long a stale page with a
    /// validator is kept for revalidation, as it does in the application's mode.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cache = cachemacro_runtime::PageCache::new().ttl(Duration::from_secs(900));
    /// # let _ = cache;
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> PageCache {
        Arc::make_mut(&mut self.policy).ttl = ttl;
        self
    }

    /// How long past its freshness a page may still be served (`x-cache: STALE`) while
    /// one request renders it anew (default: zero, never serve stale). A response's own
    /// `stale-while-revalidate` takes its place for that response's page.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cache = cachemacro_runtime::PageCache::new().stale(Duration::from_secs(300));
    /// # let _ = cache;
    /// ```
    pub fn stale(mut self, stale: Duration) -> PageCache {
        Arc::make_mut(&mut self.policy).stale = stale;
        self
    }

    /// Request headers whose values select a different page, in addition to those the
    /// responses name in `Vary` (which are always honoured). The names are added to the
    /// responses' `Vary`, so that downstream caches honour them too.
    ///
    /// # Panics
    ///
    /// If a name is not a valid header name.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new().vary(["Accept-Language"]);
    /// # let _ = cache;
    /// ```
    pub fn vary<I>(mut self, names: I) -> PageCache
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let names = names.into_iter().map(|name| {
            HeaderName::try_from(name.as_ref())
                .unwrap_or_else(|_| panic!("`{}` is not a valid header name", name.as_ref()))
        });
        let vary = &mut Arc::make_mut(&mut self.policy).key.vary;
        for name in names {
            if !vary.contains(&name) {
                vary.push(name);
            }
        }
        self
    }

    /// Whether the query string is part of the key (default: `true`). With `false`,
    /// `/books?page=2` is answered with the page stored for `/books`.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new().query(false);
    /// # let _ = cache;
    /// ```
    pub fn query(mut self, include: bool) -> PageCache {
        Arc::make_mut(&mut self.policy).key.query = include;
        self
    }

    /// A prefix of every key, to share one store between several caches.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new().key_prefix("shop:");
    /// # let _ = cache;
    /// ```
    pub fn key_prefix(mut self, prefix: &str) -> PageCache {
        Arc::make_mut(&mut self.policy).key.prefix = Arc::from(prefix);
        self
    }

    /// The largest body stored, in bytes (default: 1 MiB). Larger bodies, and streaming
    /// bodies of unknown size, pass through uncached.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new().max_body(64 * 1024);
    /// # let _ = cache;
    /// ```
    pub fn max_body(mut self, bytes: u64) -> PageCache {
        Arc::make_mut(&mut self.policy).max_body = bytes;
        self
    }

    /// The response statuses that are stored (default: `200` only in the application's
    /// mode, any final status with freshness information in the shared mode). RFC 9111 calls
    /// 200, 203, 204, 300, 301, 404 and 410 heuristically cacheable.
    ///
    /// ```
    /// use http::StatusCode;
    ///
    /// let cache = cachemacro_runtime::PageCache::new().statuses([StatusCode::OK, StatusCode::NOT_FOUND]);
    /// # let _ = cache;
    /// ```
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> PageCache {
        Arc::make_mut(&mut self.policy).statuses = Some(statuses.into_iter().collect());
        self
    }

    /// Removes the page stored for `uri`, with every variant of it; returns whether there
    /// was one. Give the URI as the page is requested, with its host
    /// (`"http://shop.example/books/312"`): the host is part of the key. A URI without
    /// one matches requests that named no host. The page is removed under both schemes
    /// (`http` and `https`), whichever the URI names.
    ///
    /// A render of the page already running still answers the requests waiting for it,
    /// but its response is not stored: it may show the data this invalidation is about
    /// as it was before the change.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new();
    /// assert!(!cache.invalidate("http://shop.example/books/312"));
    /// ```
    pub fn invalidate(&self, uri: &str) -> bool {
        let Some(bases) = self.overtake(uri) else {
            return false;
        };
        bases.iter().fold(false, |removed, base| {
            self.removed(self.storage.store.remove(base)) | removed
        })
    }

    /// [`invalidate`](Self::invalidate) without blocking the executor: the store's async
    /// removal, for handlers and background tasks.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cachemacro_runtime::PageCache::new();
    /// assert!(!cache.invalidate_async("http://shop.example/books/312").await);
    /// # });
    /// ```
    pub async fn invalidate_async(&self, uri: &str) -> bool {
        let Some(bases) = self.overtake(uri) else {
            return false;
        };
        let mut removed = false;
        for base in &bases {
            removed |= self.removed(self.storage.store.remove_async(base).await);
        }
        removed
    }

    /// The base key of `uri`, after marking the renders of its page and of every variant
    /// as overtaken (before the store removal: see `FlightCore::settle`). Removing the base
    /// entry drops a variant index too: its replacement gets a new generation, so the old
    /// variants are never found again.
    fn overtake(&self, uri: &str) -> Option<[PageKey; 2]> {
        let bases = self.base_keys(uri)?;
        self.storage
            .core
            .invalidate_where(|key| bases.iter().any(|base| key.is_page_of(base)));
        Some(bases)
    }

    /// The base keys of `uri` under every scheme: users name a page by host and path, and
    /// removing the `http` page with the `https` one is always safe.
    fn base_keys(&self, uri: &str) -> Option<[PageKey; 2]> {
        let uri: http::Uri = uri.parse().ok()?;
        Some(PageKey::for_every_scheme(&self.policy.key, &uri))
    }

    fn removed(&self, removed: Result<bool, crate::store::StoreError>) -> bool {
        removed.unwrap_or_else(|error| {
            self.storage.core.fault("invalidate", &error);
            false
        })
    }

    /// Removes every page of the store; renders running meanwhile are not stored.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new();
    /// cache.clear();
    /// ```
    pub fn clear(&self) {
        self.storage.core.invalidate_all();
        if let Err(error) = self.storage.store.clear() {
            self.storage.core.fault("clear", &error);
        }
    }

    /// [`clear`](Self::clear) without blocking the executor.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cachemacro_runtime::PageCache::new();
    /// cache.clear_async().await;
    /// # });
    /// ```
    pub async fn clear_async(&self) {
        self.storage.core.invalidate_all();
        if let Err(error) = self.storage.store.clear_async().await {
            self.storage.core.fault("clear", &error);
        }
    }

    /// Hits (including stale and coalesced answers), misses (handler runs through the
    /// cache; `revalidated` counts those a `304 Not Modified` settled), inserts, store faults and the store's own counters. How many distinct
    /// keys each route's requests have is in [`route_keys`](Self::route_keys).
    ///
    /// ```
    /// let stats = cachemacro_runtime::PageCache::new().stats();
    /// assert_eq!((stats.hits, stats.misses), (0, 0));
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.storage.core.stats(self.storage.store.stats())
    }

    /// Query parameters left out of the key: those whose name matches one of the glob
    /// `patterns` (`*` any run of characters, `?` one), like the tracking parameters that
    /// make every shared link a new page. `?utm_source=mail&id=1` is then answered with
    /// the page of `?id=1`. Names are matched as sent, still percent-encoded, and
    /// case-sensitively. Calls add up.
    ///
    /// # Panics
    ///
    /// If a pattern is empty or holds a character no query parameter name can hold (a
    /// space, `&`, `=`, `#`, a non-ASCII character).
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new().ignore_query(["utm_*", "fbclid"]);
    /// # let _ = cache;
    /// ```
    pub fn ignore_query<I>(mut self, patterns: I) -> PageCache
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let key = &mut Arc::make_mut(&mut self.policy).key;
        key.ignore_query = key.ignore_query.with(patterns);
        self
    }

    /// How many distinct keys the requests of each route had, most first: a route whose
    /// count is close to its requests is too unique for its cache (a query value per
    /// visitor, a header that differs per client), and only fills the store.
    ///
    /// The route is axum's `MatchedPath` (`/books/{id}`) when the request has one (it
    /// has, under `#[cache_page]` and `Router::layer`), else the request's path. Counts
    /// are estimates (HyperLogLog, 4 KiB per route, about 2 % off), taken on misses only,
    /// so the hit path pays nothing. The first 1 024 routes are counted one by one, the
    /// others together under `"(other routes)"`.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new();
    /// for route in cache.route_keys() {
    ///     println!("{}: {} distinct keys", route.route, route.distinct_keys);
    /// }
    /// assert!(cache.route_keys().is_empty());
    /// ```
    pub fn route_keys(&self) -> Vec<RouteKeys> {
        self.storage.routes.report()
    }
}
