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
use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, DATE, ETAG, VARY};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::cache::PageCache;
use super::cache_control::RequestDirectives;
use super::entry::{CachedPage, Page, Served, Stored, X_CACHE};
use super::freshness::{http_date_value, Freshness};
use super::hop_by_hop;
use super::key::{header_values, PageKey};
use super::mode::PageCacheMode;
use super::policy::{self, RequestFacts, Usability, Verdict};
use super::request_fields::RequestFields;
use super::validators::{self, strong_etag};
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
        if let Some(hit) = self.answer_now(request.method(), request.uri(), request.headers()) {
            return Ok(hit);
        }
        self.serve_past_hit(request, render).await
    }

    /// [`serve`](PageCache::serve) for a request that [`answer_now`](PageCache::answer_now)
    /// could not answer: a miss, a stale or varying page, a remote store, an unsafe method.
    /// Callers that checked for the synchronous hit themselves (the layer, `#[cache_page]`)
    /// come here directly, so that a miss probes the store once.
    pub(super) async fn serve_past_hit<B, F, Fut, E>(
        &self,
        request: Request<B>,
        render: F,
    ) -> Result<Response, E>
    where
        F: FnOnce(Request<B>) -> Fut,
        Fut: Future<Output = Result<Response, E>>,
    {
        let method = request.method();
        if !policy::is_safe_method(method) {
            return self.serve_unsafe(request, render).await;
        }
        let fields = RequestFields::of(request.headers());
        if !policy::is_cacheable_method(method) || fields.upgrading() {
            return render(request).await;
        }
        let base = PageKey::for_request(&self.policy.key, request.uri(), request.headers());
        let directives = RequestDirectives::parse(request.headers(), fields);
        let call = PageCall {
            cache: self,
            key: base.clone(),
            base,
            generation: None,
            looked_at: SystemTime::now(),
            facts: RequestFacts {
                authorized: fields.authorized(),
                no_store: directives.no_store,
            },
            directives,
            fields,
            head: request.method() == Method::HEAD,
            revalidating: None,
            fallback: None,
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
        reply: Reply<'_>,
        response: Response,
    ) -> Computation<Response, CachedPage, PageWrite> {
        let response_time = SystemTime::now();
        let (mut parts, body) = response.into_parts();
        let verdict = policy::verdict(
            &self.policy,
            reply.facts,
            parts.status,
            &parts.headers,
            body.size_hint().exact(),
            response_time,
        );
        let (freshness, public) = match verdict {
            Verdict::Store { freshness, public } => (freshness, public),
            Verdict::Pass(why) => {
                tracing::debug!(path = reply.base.path(), why, "page not cached");
                parts.headers.insert(X_CACHE, Served::Miss.header());
                let body = if reply.head { Body::empty() } else { body };
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
                tracing::warn!(path = reply.base.path(), %error, "page body failed while being cached");
                let mut failed = Response::new(Body::empty());
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return Computation {
                    result: failed,
                    share: None,
                    write: None,
                };
            }
        };
        hop_by_hop::strip(&mut parts.headers);
        self.keep(
            reply,
            parts.status,
            parts.headers,
            body,
            freshness,
            public,
            Served::Miss,
        )
    }

    /// A `304 Not Modified` answered the revalidation of `page` (RFC 9111 §4.3.4): the
    /// stored headers take the 304's, freshness starts again, and the stored body answers.
    fn refresh(
        &self,
        reply: Reply<'_>,
        page: &Page,
        not_modified: Response,
    ) -> Computation<Response, CachedPage, PageWrite> {
        let response_time = SystemTime::now();
        let mut update = not_modified.into_parts().0.headers;
        hop_by_hop::strip(&mut update);
        let mut headers = page.stored.clone();
        // The old `Date` and `Age` described the old response; without its own, the 304
        // is as old as now.
        headers.remove(AGE);
        headers.remove(DATE);
        // §3.2: a 304 describes the stored body; it does not say how long that body is.
        update.remove(CONTENT_LENGTH);
        for name in update.keys() {
            headers.remove(name);
        }
        for (name, value) in &update {
            headers.append(name.clone(), value.clone());
        }
        let verdict = policy::verdict(
            &self.policy,
            reply.facts,
            page.status,
            &headers,
            Some(page.body.len() as u64),
            response_time,
        );
        match verdict {
            Verdict::Store { freshness, public } => self.keep(
                reply,
                page.status,
                headers,
                page.body.clone(),
                freshness,
                public,
                Served::Revalidated,
            ),
            Verdict::Pass(why) => {
                // The update forbids storing the page any longer: answer with it once.
                tracing::debug!(path = reply.base.path(), why, "revalidated page not kept");
                let mut response = Response::new(if reply.head {
                    Body::empty()
                } else {
                    Body::from(page.body.clone())
                });
                *response.status_mut() = page.status;
                *response.headers_mut() = headers;
                response
                    .headers_mut()
                    .insert(X_CACHE, Served::Revalidated.header());
                Computation {
                    result: response,
                    share: Some(CachedPage(Stored::Pass)),
                    write: None,
                }
            }
        }
    }

    /// Stores a page the rules admitted and answers with it: the common end of a render
    /// and of a revalidation.
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &self,
        reply: Reply<'_>,
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        freshness: Freshness,
        public: bool,
        served: Served,
    ) -> Computation<Response, CachedPage, PageWrite> {
        let Ok(mut names) = policy::vary_names(&headers) else {
            unreachable!("`Vary: *` responses are never stored");
        };
        for name in &self.policy.key.vary {
            if !names.contains(name) {
                headers.append(VARY, HeaderValue::from_name(name.clone()));
                names.push(name.clone());
            }
        }
        if !headers.contains_key(DATE) {
            headers.insert(DATE, http_date_value(freshness.response_time));
        }
        let stamps = self.policy.mode == PageCacheMode::Application;
        let etag = match headers.get(ETAG) {
            Some(etag) => Some(etag.clone()),
            None => stamps.then(|| strong_etag(&body)),
        };
        let page = Arc::new(Page::new(
            status,
            headers,
            body,
            etag,
            freshness,
            public,
            stamps,
            header_values(&names, reply.request),
        ));
        let entry = CachedPage(Stored::Page(Arc::clone(&page)));
        // Served stale within the window unless it must be revalidated; kept a TTL
        // longer still when the inner service can confirm it, so that a revalidation
        // finds it.
        let mut keep_for = freshness.remaining(freshness.response_time);
        if !freshness.must_revalidate {
            keep_for +=
                policy::stale_window(&self.policy, &freshness).max(freshness.stale.if_error);
        }
        if page.can_revalidate() {
            keep_for += self.policy.ttl;
        }
        let base = reply.base;
        let write = if names.is_empty() {
            PageWrite {
                entries: vec![(base.clone(), entry.clone())],
                keep_for,
            }
        } else {
            let generation = reply
                .generation
                .unwrap_or_else(|| self.storage.generations.fetch_add(1, Ordering::Relaxed));
            let key = base.variant(&names, reply.request, generation);
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
        let response = page.respond(
            served,
            reply.request,
            reply.fields,
            freshness.age(freshness.response_time),
            reply.head,
        );
        Computation {
            result: response,
            share: Some(entry),
            write: Some(write),
        }
    }
}

/// What answering a rendered (or revalidated) response needs to know of its request.
#[derive(Clone, Copy)]
struct Reply<'a> {
    base: &'a PageKey,
    /// The client's request headers: its variant and its conditions.
    request: &'a HeaderMap,
    fields: RequestFields,
    facts: RequestFacts,
    /// The generation of the variant index the lookup found, if any.
    generation: Option<u64>,
    head: bool,
}

/// A response that counts as a failure to refresh a page (RFC 5861 §4): the server
/// errors that say the origin could not answer, not those that are the answer (a 501
/// or a 505 would be the same next time).
fn is_failure(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The answer to `only-if-cached` when nothing stored may answer (RFC 9111 §5.2.1.7).
fn gateway_timeout() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response
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
    facts: RequestFacts,
    directives: RequestDirectives,
    fields: RequestFields,
    /// A `HEAD`: answered from the `GET` entry, without a body.
    head: bool,
    /// The stored page the last lookup found that must be refreshed before it answers,
    /// when the inner service can confirm it with a conditional request.
    revalidating: Option<Arc<Page>>,
    /// The stale page the last lookup found that may answer if the refresh fails
    /// (`stale-if-error`, RFC 5861 §4).
    fallback: Option<Arc<Page>>,
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

    /// The stale `page`, answering `headers` in place of a refresh that failed, as its
    /// `stale-if-error` allows (RFC 5861 §4). The store keeps the page: a later request
    /// tries the refresh again.
    fn answer_failure(&self, page: &Page, headers: &HeaderMap) -> Response {
        tracing::warn!(
            path = self.base.path(),
            "page refresh failed; the stale page answers"
        );
        self.cache.storage.core.count_stale_on_error();
        page.respond(
            Served::Stale,
            headers,
            self.fields,
            page.freshness.age(SystemTime::now()),
            self.head,
        )
    }
}

impl<B, F, Fut, E> CacheCall<PageKey, CachedPage> for PageCall<'_, B, F>
where
    F: FnOnce(Request<B>) -> Fut,
    Fut: Future<Output = Result<Response, E>>,
{
    type Found = (Arc<Page>, Served);
    type Output = Result<Response, E>;
    type Computed = Response;
    type Write = PageWrite;

    fn home_key(&self) -> &PageKey {
        &self.base
    }

    fn flight_key(&self) -> &PageKey {
        &self.key
    }

    async fn lookup(&mut self) -> Found<(Arc<Page>, Served)> {
        let found = self.cache.lookup(&self.base, self.headers()).await;
        self.key = found.key;
        self.generation = found.generation;
        self.revalidating = None;
        self.fallback = None;
        let now = SystemTime::now();
        self.looked_at = now;
        let Some(page) = found.page else {
            return if found.faulted {
                Found::Faulted
            } else {
                Found::Missing
            };
        };
        // Not for this request (another variant raced in, or a page that may not answer
        // an authorized request): the key's flight would not answer it either.
        let Some(usability) = self.cache.judge(
            &page,
            self.headers(),
            self.facts.authorized,
            &self.directives,
            page.freshness.age(now),
        ) else {
            return Found::Bypass;
        };
        if matches!(
            usability,
            Usability::StaleWhileRefreshing | Usability::Unusable
        ) && page.can_revalidate()
        {
            self.revalidating = Some(Arc::clone(&page));
        }
        if usability != Usability::Fresh && page.freshness.may_answer_failure(now) {
            self.fallback = Some(Arc::clone(&page));
        }
        match usability {
            Usability::Fresh => Found::Fresh((page, Served::Hit)),
            Usability::AcceptedStale => Found::Fresh((page, Served::Stale)),
            Usability::StaleWhileRefreshing => Found::Stale((page, Served::Stale)),
            Usability::Unusable => Found::Missing,
        }
    }

    async fn wait(flight: &Flight<CachedPage>) -> FlightOutcome<CachedPage> {
        flight.wait_async().await
    }

    fn accept(&self, shared: CachedPage) -> Option<(Arc<Page>, Served)> {
        match shared.0 {
            Stored::Page(page) if page.answers(self.headers(), self.facts.authorized) => {
                Some((page, Served::Hit))
            }
            // A pass marker, or a page this request may not be answered with: render.
            _ => None,
        }
    }

    fn answer(&mut self, (page, served): (Arc<Page>, Served), hit: Hit) -> Result<Response, E> {
        let (served, now) = match hit {
            Hit::Fresh => (served, self.looked_at),
            Hit::Stale => (Served::Stale, self.looked_at),
            Hit::Coalesced => (Served::Hit, SystemTime::now()),
        };
        Ok(page.respond(
            served,
            self.headers(),
            self.fields,
            page.freshness.age(now),
            self.head,
        ))
    }

    async fn compute(
        &mut self,
    ) -> Result<Computation<Response, CachedPage, PageWrite>, Result<Response, E>> {
        if self.directives.only_if_cached {
            return Err(Ok(gateway_timeout()));
        }
        let mut request = self.request.take().expect("a request renders once");
        let render = self.render.take().expect("a request renders once");
        self.cache.storage.routes.record(&request, &self.key);
        // The handler renders a GET (so that a HEAD can fill the entry), without the
        // client's conditions (the cache answers those from the whole page); the
        // client's headers are kept for the variant key and those conditions.
        let headers = request.headers().clone();
        *request.method_mut() = Method::GET;
        validators::strip_conditions(request.headers_mut());
        if let Some(page) = &self.revalidating {
            validators::add_revalidation_conditions(request.headers_mut(), &page.stored);
        }
        // Boxed: the miss path's futures would otherwise sit inline in every hit's future,
        // which is moved and zeroed on each request.
        let response = match Box::pin(render(request)).await {
            Ok(response) if self.fallback.is_none() || !is_failure(response.status()) => response,
            // The followers retry on their own.
            Err(error) if self.fallback.is_none() => return Err(Err(error)),
            // A failure the stale page may answer in place of.
            _ => {
                let page = self.fallback.take().expect("checked by the arms above");
                return Err(Ok(self.answer_failure(&page, &headers)));
            }
        };
        let reply = Reply {
            base: &self.base,
            request: &headers,
            fields: self.fields,
            facts: self.facts,
            generation: self.generation,
            head: self.head,
        };
        match self.revalidating.take() {
            Some(page) if response.status() == StatusCode::NOT_MODIFIED => {
                self.cache.storage.core.count_revalidation();
                Ok(self.cache.refresh(reply, &page, response))
            }
            _ => Ok(Box::pin(self.cache.admit(reply, response)).await),
        }
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
