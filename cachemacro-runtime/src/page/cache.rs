//! [`PageCache`]: the one page-cache core that `#[cache_page]` and [`PageCacheLayer`]
//! both call. Lookup, single-flight, storage rules, header stamping and `304`s live here
//! and nowhere else.
//!
//! [`PageCacheLayer`]: super::PageCacheLayer

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, ETAG, EXPIRES, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::key::{header_values, PageKey};
use super::policy::{self, PagePolicy, Verdict};
use crate::single_flight::{FlightOutcome, Role, SingleFlight};
use crate::stats::StatsCounters;
use crate::{CacheStats, MemoryStore, Store, StoreError, StoreStats};

#[cfg(feature = "serde")]
#[path = "wire.rs"]
mod wire;

/// The header that tells whether a response came from the cache.
pub(crate) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const AGE: HeaderName = http::header::AGE;

/// What the page cache keeps under a [`PageKey`]: a rendered page (status, headers,
/// body, validators, when it was stored), or the list of headers a page varies on.
///
/// Values are cheap to clone (reference-counted). Name the type to give the cache a
/// store of your own:
///
/// ```
/// use cachemacro_runtime::{CachedPage, MemoryStore, PageCache, PageKey};
///
/// let store: MemoryStore<PageKey, CachedPage> = MemoryStore::builder().capacity(5_000).build();
/// let cache = PageCache::with_store(store);
/// assert_eq!(cache.stats().entries, 0);
/// ```
#[derive(Clone)]
pub struct CachedPage(Stored);

#[derive(Clone)]
enum Stored {
    Page(Arc<Page>),
    /// Kept under a base key whose page varies on request headers: the headers' names,
    /// and the generation of the variant keys (see `PageKey::variant`).
    Variants {
        names: Arc<[HeaderName]>,
        generation: u64,
    },
    /// Never stored: handed by a single-flight leader to its followers to say "this
    /// response was not cacheable, render your own".
    Pass,
}

struct Page {
    status: StatusCode,
    /// The headers of a hit, ready to clone: the handler's, with the `ETag`, `Vary`,
    /// `Content-Length`, `Expires`, `Cache-Control`, `Age` and `x-cache` the cache adds
    /// (the last three are rewritten per response). Cloning one map that already holds
    /// every name keeps the hit path at a single allocation for headers.
    headers: HeaderMap,
    body: Bytes,
    etag: HeaderValue,
    stored_at: SystemTime,
    fresh_for: Duration,
    /// May answer requests carrying `Authorization` (`public` or `s-maxage`).
    public: bool,
    /// The handler set no `Cache-Control`: the cache writes `max-age=<remaining>`.
    stamp_max_age: bool,
    /// The request header values this page was rendered for (its variant).
    vary: Vec<(HeaderName, Vec<HeaderValue>)>,
}

impl CachedPage {
    /// The status of the stored page; `None` for a variant index.
    ///
    /// ```
    /// # use cachemacro_runtime::CachedPage;
    /// fn describe(entry: &CachedPage) -> String {
    ///     match entry.status() {
    ///         Some(status) => format!("a page ({status}, {} bytes)", entry.body().map_or(0, <[u8]>::len)),
    ///         None => "the list of headers a page varies on".to_owned(),
    ///     }
    /// }
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        match &self.0 {
            Stored::Page(page) => Some(page.status),
            _ => None,
        }
    }

    /// The body of the stored page; `None` for a variant index.
    ///
    /// ```
    /// # use cachemacro_runtime::CachedPage;
    /// fn size(entry: &CachedPage) -> usize {
    ///     entry.body().map_or(0, <[u8]>::len)
    /// }
    /// ```
    pub fn body(&self) -> Option<&[u8]> {
        match &self.0 {
            Stored::Page(page) => Some(&page.body),
            _ => None,
        }
    }
}

impl fmt::Debug for CachedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Stored::Page(page) => f
                .debug_struct("CachedPage")
                .field("status", &page.status)
                .field("bytes", &page.body.len())
                .field("etag", &page.etag)
                .finish_non_exhaustive(),
            Stored::Variants { names, .. } => f
                .debug_struct("CachedPage")
                .field("varies_on", names)
                .finish(),
            Stored::Pass => f.write_str("CachedPage(pass)"),
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Store`] without its type parameters, so that [`PageCache`] is one type whatever
/// store it holds (the `#[cache_page]` statics and the layer must be nameable).
trait PageStore: Send + Sync {
    fn get<'a>(&'a self, key: &'a PageKey)
        -> BoxFuture<'a, Result<Option<CachedPage>, StoreError>>;
    fn insert(
        &self,
        key: PageKey,
        page: CachedPage,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn remove(&self, key: &PageKey) -> Result<bool, StoreError>;
    fn clear(&self) -> Result<(), StoreError>;
    fn stats(&self) -> StoreStats;
}

impl<S: Store<PageKey, CachedPage>> PageStore for S {
    fn get<'a>(
        &'a self,
        key: &'a PageKey,
    ) -> BoxFuture<'a, Result<Option<CachedPage>, StoreError>> {
        Box::pin(self.get_async(key))
    }

    fn insert(
        &self,
        key: PageKey,
        page: CachedPage,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.insert_async(key, page, Some(ttl)))
    }

    fn remove(&self, key: &PageKey) -> Result<bool, StoreError> {
        Store::remove(self, key)
    }

    fn clear(&self) -> Result<(), StoreError> {
        Store::clear(self)
    }

    fn stats(&self) -> StoreStats {
        Store::stats(self)
    }
}

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

struct Shared {
    store: Box<dyn PageStore>,
    flights: SingleFlight<PageKey, CachedPage>,
    counters: StatsCounters,
    /// Source of variant generations; see `PageKey::variant`.
    generations: AtomicU64,
}

/// A page cache: its rules (TTL, stale window, key options, what is stored) and its
/// store. Clones share the store; the builder methods change only the clone they are
/// called on.
///
/// [`PageCacheLayer`](super::PageCacheLayer) puts one in front of a router;
/// `#[cache_page]` gives each handler its own. [`serve`](PageCache::serve) is the whole
/// algorithm; see the [module documentation](super) for the HTTP rules it follows.
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
    policy: Arc<PagePolicy>,
    shared: Arc<Shared>,
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

/// How a request is answered once the cache has looked.
enum Plan<'a> {
    Answer(Response),
    /// Run the handler; `guard` is held when this request leads the key's flight.
    Render {
        guard: Option<crate::single_flight::LeaderGuard<'a, PageKey, CachedPage>>,
        /// The generation of the variant index this request found, if any.
        generation: Option<u64>,
    },
}

#[derive(Clone, Copy)]
enum Served {
    Hit,
    Miss,
    Stale,
}

impl Served {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Served::Hit => "HIT",
            Served::Miss => "MISS",
            Served::Stale => "STALE",
        })
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
            shared: Arc::new(Shared {
                store: Box::new(store),
                flights: SingleFlight::new(),
                counters: StatsCounters::default(),
                generations: AtomicU64::new(first_generation()),
            }),
        }
    }

    /// How long a page stays fresh when the response sets no `max-age`/`s-maxage` of its
    /// own (default: 10 minutes).
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
    /// one request renders it anew (default: zero, never serve stale).
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

    /// The response statuses that are stored (default: `200` only). RFC 9111 calls
    /// 200, 203, 204, 300, 301, 404 and 410 heuristically cacheable.
    ///
    /// ```
    /// use http::StatusCode;
    ///
    /// let cache = cachemacro_runtime::PageCache::new().statuses([StatusCode::OK, StatusCode::NOT_FOUND]);
    /// # let _ = cache;
    /// ```
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> PageCache {
        Arc::make_mut(&mut self.policy).statuses = statuses.into_iter().collect();
        self
    }

    /// Removes the page stored for `uri`, with every variant of it; returns whether there
    /// was one. Give the URI as the page is requested, with its host
    /// (`"http://shop.example/books/312"`): the host is part of the key. A URI without
    /// one matches requests that named no host.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new();
    /// assert!(!cache.invalidate("http://shop.example/books/312"));
    /// ```
    pub fn invalidate(&self, uri: &str) -> bool {
        let uri: http::Uri = match uri.parse() {
            Ok(uri) => uri,
            Err(_) => return false,
        };
        let key = PageKey::for_request(&self.policy.key, &uri, &HeaderMap::new());
        // Removing the base entry drops a variant index too: its replacement gets a new
        // generation, so the old variants are never found again.
        match self.shared.store.remove(&key) {
            Ok(existed) => existed,
            Err(error) => {
                self.fault("invalidate", &error);
                false
            }
        }
    }

    /// Removes every page of the store.
    ///
    /// ```
    /// let cache = cachemacro_runtime::PageCache::new();
    /// cache.clear();
    /// ```
    pub fn clear(&self) {
        if let Err(error) = self.shared.store.clear() {
            self.fault("clear", &error);
        }
    }

    /// Hits (including stale and coalesced answers), misses (handler runs through the
    /// cache), inserts, store faults and the store's own counters.
    ///
    /// ```
    /// let stats = cachemacro_runtime::PageCache::new().stats();
    /// assert_eq!((stats.hits, stats.misses), (0, 0));
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot(self.shared.store.stats())
    }

    /// Answers `request` from the cache, or runs `render` and stores what it returns when
    /// the rules allow. `render` runs at most once; it receives the request (a `HEAD` is
    /// turned into a `GET`, whose body the cache drops) and its error is returned as is.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use axum::{body::Body, response::Response};
    /// use cachemacro_runtime::PageCache;
    /// use http::Request;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = PageCache::new();
    /// let render = |_request: Request<()>| async { Ok::<_, Infallible>(Response::new(Body::from("book 312"))) };
    /// let first = cache.serve(Request::get("/books/312").body(()).unwrap(), render).await.unwrap();
    /// let again = cache.serve(Request::get("/books/312").body(()).unwrap(), render).await.unwrap();
    /// assert_eq!(first.headers()["x-cache"], "MISS");
    /// assert_eq!(again.headers()["x-cache"], "HIT");
    /// # });
    /// ```
    pub async fn serve<B, F, Fut, E>(
        &self,
        mut request: Request<B>,
        render: F,
    ) -> Result<Response, E>
    where
        F: FnOnce(Request<B>) -> Fut,
        Fut: Future<Output = Result<Response, E>>,
    {
        if !policy::is_cacheable_method(request.method()) {
            return render(request).await;
        }
        let head = request.method() == Method::HEAD;
        let authorized = policy::has_authorization(request.headers());
        let base = PageKey::for_request(&self.policy.key, request.uri(), request.headers());
        let (guard, generation) = match self.plan(&base, request.headers(), authorized).await {
            Plan::Answer(mut response) => {
                if head {
                    *response.body_mut() = Body::empty();
                }
                return Ok(response);
            }
            Plan::Render { guard, generation } => (guard, generation),
        };
        // The handler renders a GET (so that a HEAD can fill the entry); the headers are
        // kept to compute the variant key of its response.
        let headers = request.headers().clone();
        *request.method_mut() = Method::GET;
        self.shared.counters.miss();
        // Boxed: the miss path's futures would otherwise sit inline in every hit's future,
        // which is moved and zeroed on each request.
        let response = Box::pin(render(request)).await?;
        let (page, response) =
            Box::pin(self.admit(&base, &headers, authorized, generation, response, head)).await;
        if let Some(guard) = guard {
            match page {
                Some(page) => guard.share(page),
                // A failed body read: the followers retry on their own.
                None => drop(guard),
            }
        }
        Ok(response)
    }

    /// Looks the request up: an answer from the store, or the instruction to render.
    async fn plan(&self, base: &PageKey, headers: &HeaderMap, authorized: bool) -> Plan<'_> {
        loop {
            let (key, found, generation) = self.lookup(base, headers).await;
            let now = SystemTime::now();
            let page = match found {
                Some(page) if page.answers(headers, authorized) => page,
                // A page exists but is not for this request (another variant raced in,
                // or it may not answer an authorized request): render without the flight.
                Some(_) => {
                    return Plan::Render {
                        guard: None,
                        generation,
                    }
                }
                None => {
                    match self.shared.flights.join(&key) {
                        Role::Leader(guard) => {
                            // A previous leader may have stored the page between our lookup
                            // and our joining; dropping the guard lets followers retry.
                            if let (_, Some(page), _) = self.lookup(base, headers).await {
                                if page.answers(headers, authorized) && page.is_fresh(now) {
                                    self.shared.counters.hit();
                                    return Plan::Answer(page.respond(Served::Hit, headers, now));
                                }
                            }
                            return Plan::Render {
                                guard: Some(guard),
                                generation,
                            };
                        }
                        Role::Follower(flight) => match flight.wait_async().await {
                            FlightOutcome::Shared(CachedPage(Stored::Page(page)))
                                if page.answers(headers, authorized) =>
                            {
                                self.shared.counters.coalesced();
                                return Plan::Answer(page.respond(
                                    Served::Hit,
                                    headers,
                                    SystemTime::now(),
                                ));
                            }
                            FlightOutcome::Shared(_) => {
                                return Plan::Render {
                                    guard: None,
                                    generation,
                                }
                            }
                            FlightOutcome::Retry => continue,
                        },
                    }
                }
            };
            if page.is_fresh(now) {
                self.shared.counters.hit();
                return Plan::Answer(page.respond(Served::Hit, headers, now));
            }
            if page.age(now) < page.fresh_for + self.policy.stale {
                match self.shared.flights.join(&key) {
                    // Someone is already re-rendering: serve the stale page at once.
                    Role::Follower(_) => {
                        self.shared.counters.hit();
                        return Plan::Answer(page.respond(Served::Stale, headers, now));
                    }
                    Role::Leader(guard) => {
                        return Plan::Render {
                            guard: Some(guard),
                            generation,
                        }
                    }
                }
            }
            // Expired beyond the stale window but not yet purged by the store.
            return match self.shared.flights.join(&key) {
                Role::Leader(guard) => Plan::Render {
                    guard: Some(guard),
                    generation,
                },
                Role::Follower(_) => Plan::Render {
                    guard: None,
                    generation,
                },
            };
        }
    }

    /// The entry for a request: the key it lives under (a variant key when the base key
    /// holds a variant index), the page if there is one, and the index's generation.
    async fn lookup(
        &self,
        base: &PageKey,
        headers: &HeaderMap,
    ) -> (PageKey, Option<Arc<Page>>, Option<u64>) {
        match self.get(base).await {
            Some(Stored::Page(page)) => (base.clone(), Some(page), None),
            Some(Stored::Variants { names, generation }) => {
                let key = base.variant(&names, headers, generation);
                let page = match self.get(&key).await {
                    Some(Stored::Page(page)) => Some(page),
                    _ => None,
                };
                (key, page, Some(generation))
            }
            Some(Stored::Pass) | None => (base.clone(), None, None),
        }
    }

    async fn get(&self, key: &PageKey) -> Option<Stored> {
        match self.shared.store.get(key).await {
            Ok(found) => found.map(|page| page.0),
            Err(error) => {
                self.fault("get", &error);
                None
            }
        }
    }

    async fn insert(&self, key: PageKey, page: CachedPage, ttl: Duration) {
        match self.shared.store.insert(key, page, ttl).await {
            Ok(()) => self.shared.counters.insert(),
            Err(error) => self.fault("insert", &error),
        }
    }

    /// Applies the storage rules to a freshly rendered response: stores it if allowed and
    /// stamps the response. Returns what to share with the flight's followers (`None`
    /// when the body could not be read) and the response to send.
    async fn admit(
        &self,
        base: &PageKey,
        headers: &HeaderMap,
        authorized: bool,
        generation: Option<u64>,
        response: Response,
        head: bool,
    ) -> (Option<CachedPage>, Response) {
        let (mut parts, body) = response.into_parts();
        let verdict = policy::verdict(
            &self.policy,
            authorized,
            parts.status,
            &parts.headers,
            body.size_hint().exact(),
        );
        let (fresh_for, public) = match verdict {
            Verdict::Store { fresh_for, public } => (fresh_for, public),
            Verdict::Pass(why) => {
                tracing::debug!(path = base.path(), why, "page not cached");
                parts.headers.insert(X_CACHE, Served::Miss.header());
                let body = if head { Body::empty() } else { body };
                return (
                    Some(CachedPage(Stored::Pass)),
                    Response::from_parts(parts, body),
                );
            }
        };
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                tracing::warn!(path = base.path(), %error, "page body failed while being cached");
                let mut failed = Response::new(Body::empty());
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return (None, failed);
            }
        };
        let Ok(mut names) = policy::vary_names(&parts.headers) else {
            unreachable!("`Vary: *` responses are never stored");
        };
        for name in &self.policy.key.vary {
            if !names.contains(name) {
                parts
                    .headers
                    .append(VARY, HeaderValue::from_name(name.clone()));
                names.push(name.clone());
            }
        }
        let etag = match parts.headers.get(ETAG) {
            Some(etag) => etag.clone(),
            None => {
                let etag = strong_etag(&body);
                parts.headers.insert(ETAG, etag.clone());
                etag
            }
        };
        let stored_at = SystemTime::now();
        let stamp_max_age = !parts.headers.contains_key(CACHE_CONTROL);
        let expires = (!parts.headers.contains_key(EXPIRES)).then(|| {
            HeaderValue::try_from(httpdate::fmt_http_date(stored_at + fresh_for))
                .expect("an HTTP date is a valid header value")
        });
        let page = Arc::new(Page {
            status: parts.status,
            stamp_max_age,
            headers: hit_headers(parts.headers, body.len(), stamp_max_age, expires),
            body,
            etag,
            stored_at,
            fresh_for,
            public,
            vary: header_values(&names, headers),
        });
        let entry = CachedPage(Stored::Page(Arc::clone(&page)));
        let keep_for = fresh_for + self.policy.stale;
        if names.is_empty() {
            self.insert(base.clone(), entry.clone(), keep_for).await;
        } else {
            let generation = generation
                .unwrap_or_else(|| self.shared.generations.fetch_add(1, Ordering::Relaxed));
            let key = base.variant(&names, headers, generation);
            // The index is written again with every variant, so it outlives them all.
            let index = Stored::Variants {
                names: names.into(),
                generation,
            };
            self.insert(base.clone(), CachedPage(index), keep_for).await;
            self.insert(key, entry.clone(), keep_for).await;
        }
        let mut response = page.respond(Served::Miss, headers, stored_at);
        if head {
            *response.body_mut() = Body::empty();
        }
        (Some(entry), response)
    }

    /// A cache is never the source of truth: a fault is counted and logged, and the
    /// request carries on as if the cache had missed.
    fn fault(&self, operation: &'static str, error: &StoreError) {
        self.shared.counters.error();
        tracing::warn!(operation, %error, "page cache store fault; rendering instead");
    }
}

impl Page {
    /// Whether this page may answer a request with these headers: same variant, and no
    /// `Authorization` unless the page was public.
    fn answers(&self, headers: &HeaderMap, authorized: bool) -> bool {
        (self.public || !authorized)
            && self
                .vary
                .iter()
                .all(|(name, values)| headers.get_all(name).iter().eq(values.iter()))
    }

    fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stored_at).unwrap_or_default()
    }

    fn is_fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.fresh_for
    }

    /// The response for this page, stamped; `304 Not Modified` when the request's
    /// `If-None-Match` names its `ETag`. `request` is the request's headers.
    fn respond(&self, served: Served, request: &HeaderMap, now: SystemTime) -> Response {
        let age = self.age(now);
        let not_modified = request
            .get(IF_NONE_MATCH)
            .is_some_and(|condition| etag_matches(condition, &self.etag));
        let mut response = if not_modified {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            // RFC 9110 §15.4.5: the headers a 200 would carry that describe the
            // representation's caching, not its content.
            for name in [
                CACHE_CONTROL,
                EXPIRES,
                VARY,
                http::header::CONTENT_LOCATION,
                http::header::DATE,
                AGE,
                X_CACHE,
            ] {
                for value in self.headers.get_all(&name) {
                    response.headers_mut().append(name.clone(), value.clone());
                }
            }
            response.headers_mut().insert(ETAG, self.etag.clone());
            response
        } else {
            let mut response = Response::new(Body::from(self.body.clone()));
            *response.status_mut() = self.status;
            *response.headers_mut() = self.headers.clone();
            response
        };
        let headers = response.headers_mut();
        if self.stamp_max_age {
            let remaining = match served {
                Served::Stale => 0,
                // Whole seconds on both sides, so that `Age + max-age` is the lifetime.
                _ => self.fresh_for.as_secs().saturating_sub(age.as_secs()),
            };
            headers.insert(CACHE_CONTROL, max_age(remaining));
        }
        match served {
            Served::Miss => {
                headers.remove(AGE);
                headers.insert(X_CACHE, served.header());
            }
            Served::Hit => {
                headers.insert(AGE, HeaderValue::from(age.as_secs()));
            }
            Served::Stale => {
                headers.insert(AGE, HeaderValue::from(age.as_secs()));
                headers.insert(X_CACHE, served.header());
            }
        }
        response
    }
}

/// The headers of a hit (see `Page::headers`), built once when the page is stored.
fn hit_headers(
    mut headers: HeaderMap,
    length: usize,
    stamp_max_age: bool,
    expires: Option<HeaderValue>,
) -> HeaderMap {
    headers.reserve(6);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(expires) = expires {
        headers.insert(EXPIRES, expires);
    }
    if stamp_max_age {
        headers.insert(CACHE_CONTROL, max_age(0));
    }
    headers.insert(AGE, HeaderValue::from_static("0"));
    headers.insert(X_CACHE, Served::Hit.header());
    headers
}

fn max_age(seconds: u64) -> HeaderValue {
    HeaderValue::try_from(format!("max-age={seconds}")).expect("digits are a valid header value")
}

/// A strong validator: a 128-bit hash of the exact bytes, so that any change of the body
/// changes it (RFC 9110 §8.8.3).
fn strong_etag(body: &[u8]) -> HeaderValue {
    let hash = xxhash_rust::xxh3::xxh3_128(body);
    HeaderValue::try_from(format!("\"{hash:032x}\"")).expect("hex digits are a valid header value")
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored;
/// `*` matches any current representation.
fn etag_matches(condition: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(condition) = condition.to_str() else {
        return false;
    };
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    let etag = etag.trim_start_matches("W/");
    condition
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let etag = HeaderValue::from_static("\"abc\"");
        for matching in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            assert!(
                etag_matches(&HeaderValue::from_static(matching), &etag),
                "{matching}"
            );
        }
        for other in ["\"abd\"", "abc", ""] {
            assert!(
                !etag_matches(&HeaderValue::from_static(other), &etag),
                "{other}"
            );
        }
    }

    #[test]
    fn etags_differ_with_the_body() {
        assert_ne!(strong_etag(b"a"), strong_etag(b"b"));
        assert_eq!(strong_etag(b"a"), strong_etag(b"a"));
    }
}
