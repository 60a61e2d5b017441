//! The synchronous hit: a fresh page held in process answers without a future, a
//! flight or a second key. Most requests to a cached site are such hits, and the
//! asynchronous [`serve`](PageCache::serve) (whose future is a couple of kilobytes, boxed
//! by the layer) is kept for everything else.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::response::Response;
use http::{HeaderMap, Method, Uri};

use super::cache::PageCache;
use super::cache_control::RequestDirectives;
use super::entry::{Page, Served, Stored};
use super::key::{BaseKeyRef, PageKey};
use super::policy::{self, Usability};
use super::request_fields::RequestFields;

impl PageCache {
    /// The answer to `request` when it is a hit on a page the store holds in process
    /// (a [`MemoryStore`](crate::MemoryStore)) and that may answer it as it is: fresh,
    /// or stale within the request's `max-stale`. `None` otherwise; then
    /// [`serve`](PageCache::serve) handles the request whole, with the same rules.
    pub(crate) fn answer_now(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let hit = self.answer_uncounted(method, uri, headers)?;
        self.count_hit();
        Some(hit)
    }

    /// [`answer_now`](PageCache::answer_now) without counting the hit: for a hit judged
    /// before the handler's guards run, which counts only if they let it be served.
    pub(crate) fn answer_uncounted(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let fields = RequestFields::of(headers);
        if !policy::is_cacheable_method(method) || fields.upgrading() {
            return None;
        }
        let rules = &self.policy.key;
        let found = match BaseKeyRef::of(rules, uri, headers, fields) {
            Some(base) => self.storage.store.probe_base(&base),
            None => self
                .storage
                .store
                .probe(&PageKey::for_request(rules, uri, headers)),
        };
        let page = match found?.0 {
            Stored::Page(page) => page,
            Stored::Variants { names, generation } => {
                let base = PageKey::for_request(rules, uri, headers);
                let variant = base.variant(&names, headers, generation);
                match self.storage.store.probe(&variant)?.0 {
                    Stored::Page(page) => page,
                    _ => return None,
                }
            }
            Stored::Pass => return None,
        };
        // One age for the judgement and the answer's `Age`.
        let age = page.freshness.age(SystemTime::now());
        let directives = RequestDirectives::parse(headers, fields);
        let served = match self.judge(&page, headers, fields.authorized(), &directives, age)? {
            Usability::Fresh => Served::Hit,
            Usability::AcceptedStale => Served::Stale,
            Usability::StaleWhileRefreshing | Usability::Unusable => return None,
        };
        Some(page.respond(served, headers, fields, age, method == Method::HEAD))
    }

    /// Counts a hit that [`answer_uncounted`](PageCache::answer_uncounted) judged.
    pub(crate) fn count_hit(&self) {
        self.storage.core.count_hit();
    }

    /// How a stored page may answer a request; `None` when it may not answer it at all
    /// (another variant, or a page that may not answer an authorized request). The one
    /// judgement of the synchronous hit and of [`serve`](PageCache::serve)'s lookup.
    pub(super) fn judge(
        &self,
        page: &Arc<Page>,
        headers: &HeaderMap,
        authorized: bool,
        directives: &RequestDirectives,
        age: Duration,
    ) -> Option<Usability> {
        page.answers(headers, authorized)
            .then(|| policy::usability(&self.policy, &page.freshness, directives, age))
    }
}
