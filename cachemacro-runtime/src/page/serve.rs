//! How the page cache answers a request: [`PageCache::serve`] plugs a page's particulars
//! into the flight core (lookup through a variant index, whether a page answers this
//! request, rendering, the storage rules and header stamping), which does the rest:
//! single-flight, stale-while-revalidate, invalidation and statistics.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, ETAG, EXPIRES, VARY};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::cache::PageCache;
use super::entry::{hit_headers, CachedPage, Page, Served, Stored, X_CACHE};
use super::etag::strong_etag;
use super::key::{header_values, PageKey};
use super::policy::{self, Verdict};
use crate::flight::single_flight::{Flight, FlightOutcome};
use crate::flight::{CacheCall, Computation, Found, Hit};

impl PageCache {
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
    pub async fn serve<B, F, Fut, E>(&self, request: Request<B>, render: F) -> Result<Response, E>
    where
        F: FnOnce(Request<B>) -> Fut,
        Fut: Future<Output = Result<Response, E>>,
    {
        if !policy::is_cacheable_method(request.method()) {
            return render(request).await;
        }
        let base = PageKey::for_request(&self.policy.key, request.uri(), request.headers());
        let call = PageCall {
            cache: self,
            key: base.clone(),
            base,
            generation: None,
            looked_at: SystemTime::now(),
            authorized: policy::has_authorization(request.headers()),
            head: request.method() == Method::HEAD,
            request: Some(request),
            render: Some(render),
            written: Vec::new(),
        };
        self.storage.core.run(call).await
    }

    /// The entry for a request: the key it lives under (a variant key when the base key
    /// holds a variant index), the page if there is one, and the index's generation.
    async fn lookup(&self, base: &PageKey, headers: &HeaderMap) -> PageLookup {
        let mut found = PageLookup {
            key: base.clone(),
            page: None,
            generation: None,
            faulted: false,
        };
        match self.get(base, &mut found.faulted).await {
            Some(Stored::Page(page)) => found.page = Some(page),
            Some(Stored::Variants { names, generation }) => {
                found.key = base.variant(&names, headers, generation);
                found.generation = Some(generation);
                if let Some(Stored::Page(page)) = self.get(&found.key, &mut found.faulted).await {
                    found.page = Some(page);
                }
            }
            Some(Stored::Pass) | None => {}
        }
        found
    }

    /// The entry under `key`; a fault is reported, noted in `faulted` and read as a miss.
    async fn get(&self, key: &PageKey, faulted: &mut bool) -> Option<Stored> {
        match self.storage.store.get(key).await {
            Ok(found) => found.map(|page| page.0),
            Err(error) => {
                self.storage.core.fault("get", &error);
                *faulted = true;
                None
            }
        }
    }

    /// Applies the storage rules to a freshly rendered response and stamps it. Returns
    /// the response to send, what to share with the flight's followers (`None` when the
    /// body could not be read, a pass marker when the response may not be stored) and
    /// what to store.
    async fn admit(
        &self,
        base: &PageKey,
        headers: &HeaderMap,
        authorized: bool,
        generation: Option<u64>,
        response: Response,
        head: bool,
    ) -> Computation<Response, CachedPage, PageWrite> {
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
                return Computation {
                    result: Response::from_parts(parts, body),
                    share: Some(CachedPage(Stored::Pass)),
                    write: None,
                };
            }
        };
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                tracing::warn!(path = base.path(), %error, "page body failed while being cached");
                let mut failed = Response::new(Body::empty());
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return Computation {
                    result: failed,
                    share: None,
                    write: None,
                };
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
        let write = if names.is_empty() {
            PageWrite {
                entries: vec![(base.clone(), entry.clone())],
                keep_for,
            }
        } else {
            let generation = generation
                .unwrap_or_else(|| self.storage.generations.fetch_add(1, Ordering::Relaxed));
            let key = base.variant(&names, headers, generation);
            // The index is written again with every variant, so it outlives them all.
            let index = Stored::Variants {
                names: names.into(),
                generation,
            };
            PageWrite {
                entries: vec![(base.clone(), CachedPage(index)), (key, entry.clone())],
                keep_for,
            }
        };
        let mut response = page.respond(Served::Miss, headers, stored_at);
        if head {
            *response.body_mut() = Body::empty();
        }
        Computation {
            result: response,
            share: Some(entry),
            write: Some(write),
        }
    }
}

/// What a request found in the store.
struct PageLookup {
    key: PageKey,
    page: Option<Arc<Page>>,
    generation: Option<u64>,
    /// The store failed on one of the reads.
    faulted: bool,
}

/// What a rendered page writes: the page under its key, after the variant index under
/// the base key when the page varies.
struct PageWrite {
    entries: Vec<(PageKey, CachedPage)>,
    keep_for: Duration,
}

/// One request through the page cache.
struct PageCall<'a, B, F> {
    cache: &'a PageCache,
    base: PageKey,
    /// The key the page lives under: `base`, or a variant key once a lookup found an
    /// index; the key of the flight.
    key: PageKey,
    /// The generation of the variant index the last lookup found, if any.
    generation: Option<u64>,
    /// When the last lookup ran: the page's age is measured from it.
    looked_at: SystemTime,
    authorized: bool,
    /// A `HEAD`: answered from the `GET` entry, without a body.
    head: bool,
    /// The request until the handler gets it; only the last step, rendering, takes it.
    request: Option<Request<B>>,
    render: Option<F>,
    /// The keys this request's render wrote, to remove if an invalidation overtook it.
    written: Vec<PageKey>,
}

impl<B, F> PageCall<'_, B, F> {
    fn headers(&self) -> &HeaderMap {
        self.request
            .as_ref()
            .expect("the request is kept until the render, the last step")
            .headers()
    }
}

impl<B, F, Fut, E> CacheCall<PageKey, CachedPage> for PageCall<'_, B, F>
where
    F: FnOnce(Request<B>) -> Fut,
    Fut: Future<Output = Result<Response, E>>,
{
    type Found = Arc<Page>;
    type Output = Result<Response, E>;
    type Computed = Response;
    type Write = PageWrite;

    fn home_key(&self) -> &PageKey {
        &self.base
    }

    fn flight_key(&self) -> &PageKey {
        &self.key
    }

    async fn lookup(&mut self) -> Found<Arc<Page>> {
        let found = self.cache.lookup(&self.base, self.headers()).await;
        self.key = found.key;
        self.generation = found.generation;
        let now = SystemTime::now();
        self.looked_at = now;
        match found.page {
            None if found.faulted => Found::Faulted,
            None => Found::Missing,
            // Not for this request (another variant raced in, or a page that may not
            // answer an authorized request): the key's flight would not answer it either.
            Some(page) if !page.answers(self.headers(), self.authorized) => Found::Bypass,
            Some(page) if page.is_fresh(now) => Found::Fresh(page),
            Some(page) if page.age(now) < page.fresh_for + self.cache.policy.stale => {
                Found::Stale(page)
            }
            // Expired beyond the stale window but not yet purged by the store.
            Some(_) => Found::Missing,
        }
    }

    async fn wait(flight: &Flight<CachedPage>) -> FlightOutcome<CachedPage> {
        flight.wait_async().await
    }

    fn accept(&self, shared: CachedPage) -> Option<Arc<Page>> {
        match shared.0 {
            Stored::Page(page) if page.answers(self.headers(), self.authorized) => Some(page),
            // A pass marker, or a page this request may not be answered with: render.
            _ => None,
        }
    }

    fn answer(&mut self, page: Arc<Page>, hit: Hit) -> Result<Response, E> {
        let (served, now) = match hit {
            Hit::Fresh => (Served::Hit, self.looked_at),
            Hit::Stale => (Served::Stale, self.looked_at),
            Hit::Coalesced => (Served::Hit, SystemTime::now()),
        };
        let mut response = page.respond(served, self.headers(), now);
        if self.head {
            *response.body_mut() = Body::empty();
        }
        Ok(response)
    }

    async fn compute(
        &mut self,
    ) -> Result<Computation<Response, CachedPage, PageWrite>, Result<Response, E>> {
        let mut request = self.request.take().expect("a request renders once");
        let render = self.render.take().expect("a request renders once");
        self.cache.storage.routes.record(&request, &self.key);
        // The handler renders a GET (so that a HEAD can fill the entry); the headers are
        // kept to compute the variant key of its response.
        let headers = request.headers().clone();
        *request.method_mut() = Method::GET;
        // Boxed: the miss path's futures would otherwise sit inline in every hit's future,
        // which is moved and zeroed on each request.
        let response = match Box::pin(render(request)).await {
            Ok(response) => response,
            // The followers retry on their own.
            Err(error) => return Err(Err(error)),
        };
        Ok(Box::pin(self.cache.admit(
            &self.base,
            &headers,
            self.authorized,
            self.generation,
            response,
            self.head,
        ))
        .await)
    }

    fn finish(response: Response) -> Result<Response, E> {
        Ok(response)
    }

    async fn store(&mut self, write: PageWrite) {
        for (key, entry) in write.entries {
            let stored = self
                .cache
                .storage
                .store
                .insert(key.clone(), entry, write.keep_for)
                .await;
            self.cache.storage.core.record_insert(stored);
            self.written.push(key);
        }
    }

    async fn unstore(&mut self) {
        // Every key, the page first: removing the index alone is not enough, since a
        // request that found it meanwhile may write it again, generation and all, and so
        // bring the page back.
        while let Some(key) = self.written.pop() {
            if let Err(error) = self.cache.storage.store.remove_async(&key).await {
                self.cache.storage.core.fault("remove", &error);
            }
        }
    }
}
