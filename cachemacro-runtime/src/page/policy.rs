//! What may be served from and stored in the page cache: the HTTP rules, in one place.
//!
//! The rules follow RFC 9111, in the application's mode (a default TTL for responses
//! without freshness information) or a shared cache's (see `PageCacheMode`), stricter
//! than the RFC in one place: a response that sets a cookie is never stored.

use std::time::{Duration, SystemTime};

use http::header::{ETAG, LAST_MODIFIED, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::cache_control::{RequestDirectives, ResponseDirectives};
use super::freshness::{self, Freshness, StaleWindows};

use super::key::KeyRules;
use super::mode::PageCacheMode;

/// The configuration of a page cache; shared by every request it serves.
#[derive(Clone, Debug)]
pub(crate) struct PagePolicy {
    pub(crate) key: KeyRules,
    /// Freshness lifetime when the response does not give its own `max-age`/`s-maxage`.
    pub(crate) ttl: Duration,
    /// How long past its freshness an entry may still be served while it is re-rendered.
    pub(crate) stale: Duration,
    /// The largest body stored, in bytes.
    pub(crate) max_body: u64,
    /// The statuses stored; `None`: the mode's (`200` for an application, any final
    /// status with freshness information for a shared cache).
    pub(crate) statuses: Option<Vec<StatusCode>>,
    pub(crate) mode: PageCacheMode,
    /// Whether request directives that force a render (`no-cache`, `max-age`,
    /// `Pragma: no-cache`) are obeyed.
    pub(crate) honour_request_no_cache: bool,
}

/// Django's `CACHE_MIDDLEWARE_SECONDS` default: ten minutes.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(600);
pub(crate) const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

impl Default for PagePolicy {
    fn default() -> Self {
        PagePolicy {
            key: KeyRules::default(),
            ttl: DEFAULT_TTL,
            stale: Duration::ZERO,
            max_body: DEFAULT_MAX_BODY,
            statuses: None,
            mode: PageCacheMode::Application,
            honour_request_no_cache: false,
        }
    }
}

/// Only safe, idempotent reads are cached; `HEAD` shares the `GET` entry.
pub(crate) fn is_cacheable_method(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The methods RFC 9110 §9.2.1 defines as safe: any other one may change the resource,
/// so a success invalidates what the cache holds for it (RFC 9111 §4.4).
pub(crate) fn is_safe_method(method: &Method) -> bool {
    is_cacheable_method(method) || method == Method::OPTIONS || method == Method::TRACE
}

/// Whether a response may be stored, and how fresh it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Store {
        freshness: Freshness,
        /// The response may also answer requests that carry `Authorization` (§3.5).
        public: bool,
    },
    Pass(&'static str),
}

/// What the storage rules need to know of the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts {
    pub(crate) authorized: bool,
    /// The request said `Cache-Control: no-store`.
    pub(crate) no_store: bool,
}

/// Whether a response carries a validator of its own, so that a stale copy can be
/// revalidated with a conditional request instead of rendered again.
pub(crate) fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED)
}

/// Whether `status` may be stored at all: the configured statuses, or the mode's.
fn storable_status(policy: &PagePolicy, status: StatusCode) -> bool {
    match (&policy.statuses, policy.mode) {
        (Some(statuses), _) => statuses.contains(&status),
        (None, PageCacheMode::Application) => status == StatusCode::OK,
        // A final status the cache understands: not a partial response, not a 304 (which
        // only updates a stored response), not an interim one.
        (None, PageCacheMode::Shared) => {
            !status.is_informational()
                && status != StatusCode::PARTIAL_CONTENT
                && status != StatusCode::NOT_MODIFIED
        }
    }
}

/// The storage rules for a response to a `GET` (or `HEAD`) request, received at
/// `response_time`. `body_size` is the body's exact size when it is known before reading
/// it (`None`: streaming).
pub(crate) fn verdict(
    policy: &PagePolicy,
    request: RequestFacts,
    status: StatusCode,
    headers: &HeaderMap,
    body_size: Option<u64>,
    response_time: SystemTime,
) -> Verdict {
    if !storable_status(policy, status) {
        return Verdict::Pass("status not cacheable");
    }
    match body_size {
        None => return Verdict::Pass("streaming body"),
        Some(size) if size > policy.max_body => return Verdict::Pass("body too large"),
        Some(_) => {}
    }
    if headers.contains_key(SET_COOKIE) {
        return Verdict::Pass("Set-Cookie");
    }
    let directives = ResponseDirectives::parse(headers);
    if directives.private {
        return Verdict::Pass("Cache-Control: private");
    }
    if directives.no_store {
        return Verdict::Pass("Cache-Control: no-store");
    }
    if request.no_store {
        return Verdict::Pass("request Cache-Control: no-store");
    }
    if vary_names(headers).is_err() {
        return Verdict::Pass("Vary: *");
    }
    let public = directives.public
        || directives.s_maxage.is_some()
        || (policy.mode == PageCacheMode::Shared && directives.must_revalidate);
    if request.authorized && !public {
        return Verdict::Pass("request carries Authorization");
    }
    let Some(lifetime) = freshness::lifetime(
        policy.mode,
        &directives,
        status,
        headers,
        response_time,
        policy.ttl,
    ) else {
        return Verdict::Pass("no freshness information");
    };
    let freshness = Freshness {
        response_time,
        initial_age: freshness::initial_age(headers, response_time),
        // `no-cache`: stored, but revalidated before every use (§5.2.2.4).
        lifetime: if directives.no_cache {
            Duration::ZERO
        } else {
            lifetime
        },
        must_revalidate: directives.must_revalidate
            || directives.proxy_revalidate
            || directives.no_cache,
        stale: StaleWindows::of(&directives),
    };
    // A response stale on arrival is only worth keeping to revalidate it.
    if !freshness.is_fresh(response_time) && !has_validator(headers) {
        return Verdict::Pass("stale on arrival, without a validator");
    }
    Verdict::Store { freshness, public }
}

/// Whether a stored page may answer a request, judged by its freshness, the request's
/// directives and the cache's stale window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usability {
    Fresh,
    /// Stale, but the request's `max-stale` accepts it as it is.
    AcceptedStale,
    /// Stale within the cache's `stale` window: served at once to requests that find it
    /// being refreshed; the request that finds nobody refreshing it refreshes it.
    StaleWhileRefreshing,
    /// Must be revalidated or rendered before it answers anyone.
    Unusable,
}

/// How a stored page with `freshness` may answer a request with `request`'s directives
/// at `now` (RFC 9111 §4.2, §5.2.1).
pub(crate) fn usability(
    policy: &PagePolicy,
    freshness: &Freshness,
    request: &RequestDirectives,
    age: Duration,
) -> Usability {
    let mut fresh = age < freshness.lifetime;
    // The client's own limits, when it sets any: `min-fresh` always (it only brings a
    // refresh that is due anyway forward), `no-cache` and `max-age` only when the cache
    // lets clients force a render.
    let mut client_refuses = false;
    if !request.is_empty() {
        if let Some(min_fresh) = request.min_fresh {
            fresh &= age + min_fresh < freshness.lifetime;
        }
        if policy.honour_request_no_cache {
            client_refuses = request.no_cache || request.max_age.is_some_and(|max| age > max);
        }
    }
    if client_refuses {
        return Usability::Unusable;
    }
    if fresh {
        return Usability::Fresh;
    }
    if freshness.must_revalidate {
        return Usability::Unusable;
    }
    let staleness = age.saturating_sub(freshness.lifetime);
    if let Some(max_stale) = request.max_stale {
        if max_stale.map_or(true, |limit| staleness <= limit) {
            return Usability::AcceptedStale;
        }
    }
    if staleness < stale_window(policy, freshness) {
        Usability::StaleWhileRefreshing
    } else {
        Usability::Unusable
    }
}

/// How long past its freshness a page answers while one request refreshes it: the
/// response's `stale-while-revalidate` (RFC 5861 §3), which knows the resource, else the
/// cache's `stale` setting.
pub(crate) fn stale_window(policy: &PagePolicy, freshness: &Freshness) -> Duration {
    freshness.stale.while_revalidate.unwrap_or(policy.stale)
}

/// The header names of a response's `Vary`, lower-cased and deduplicated; `Err` for
/// `Vary: *` (the response varies on something no key can capture).
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Vec<HeaderName>, ()> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(text) = value.to_str() else {
            return Err(());
        };
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            if name == "*" {
                return Err(());
            }
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                return Err(());
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::header_map as headers;

    const ARRIVED: SystemTime = SystemTime::UNIX_EPOCH;

    fn judge(
        mode: PageCacheMode,
        authorized: bool,
        status: u16,
        pairs: &[(&'static str, &'static str)],
        size: Option<u64>,
    ) -> Verdict {
        let policy = PagePolicy {
            mode,
            ..PagePolicy::default()
        };
        let request = RequestFacts {
            authorized,
            no_store: false,
        };
        let status = StatusCode::from_u16(status).unwrap();
        verdict(&policy, request, status, &headers(pairs), size, ARRIVED)
    }

    fn check(
        auth: bool,
        status: u16,
        pairs: &[(&'static str, &'static str)],
        size: Option<u64>,
    ) -> Verdict {
        judge(PageCacheMode::Application, auth, status, pairs, size)
    }

    fn stored(lifetime: Duration, public: bool) -> Verdict {
        Verdict::Store {
            freshness: Freshness {
                response_time: ARRIVED,
                initial_age: Duration::ZERO,
                lifetime,
                must_revalidate: false,
                stale: StaleWindows::default(),
            },
            public,
        }
    }

    #[test]
    fn storage_rules() {
        assert_eq!(check(false, 200, &[], Some(10)), stored(DEFAULT_TTL, false));
        let passes = [
            (check(false, 404, &[], Some(10)), "status not cacheable"),
            (check(false, 200, &[], None), "streaming body"),
            (
                check(false, 200, &[], Some(DEFAULT_MAX_BODY + 1)),
                "body too large",
            ),
            (
                check(false, 200, &[("set-cookie", "a=b")], Some(1)),
                "Set-Cookie",
            ),
            (
                check(
                    false,
                    200,
                    &[("cache-control", "max-age=60, Private")],
                    Some(1),
                ),
                "Cache-Control: private",
            ),
            (
                check(false, 200, &[("cache-control", "no-store")], Some(1)),
                "Cache-Control: no-store",
            ),
            (
                check(false, 200, &[("vary", "accept, *")], Some(1)),
                "Vary: *",
            ),
            (
                check(true, 200, &[], Some(1)),
                "request carries Authorization",
            ),
            (
                check(false, 200, &[("cache-control", "max-age=0")], Some(1)),
                "stale on arrival, without a validator",
            ),
            (
                check(false, 200, &[("cache-control", "no-cache")], Some(1)),
                "stale on arrival, without a validator",
            ),
            (
                check(false, 200, &[("expires", "0")], Some(1)),
                "stale on arrival, without a validator",
            ),
        ];
        for (verdict, why) in passes {
            assert_eq!(verdict, Verdict::Pass(why));
        }
        assert_eq!(
            check(true, 200, &[("cache-control", "public")], Some(1)),
            stored(DEFAULT_TTL, true)
        );
        assert_eq!(
            check(
                true,
                200,
                &[("cache-control", "max-age=5, s-maxage=30")],
                Some(1)
            ),
            stored(Duration::from_secs(30), true)
        );
    }

    #[test]
    fn no_cache_with_a_validator_is_stored_to_be_revalidated() {
        let Verdict::Store { freshness, .. } = check(
            false,
            200,
            &[("cache-control", "no-cache"), ("etag", "\"v1\"")],
            Some(1),
        ) else {
            panic!("a no-cache response with an ETag is stored");
        };
        assert_eq!(freshness.lifetime, Duration::ZERO);
        assert!(freshness.must_revalidate);
    }

    #[test]
    fn a_shared_cache_stores_only_what_the_response_allows() {
        let shared = PageCacheMode::Shared;
        assert_eq!(
            judge(shared, false, 200, &[], Some(1)),
            Verdict::Pass("no freshness information")
        );
        assert_eq!(
            judge(
                shared,
                false,
                302,
                &[("cache-control", "max-age=60")],
                Some(1)
            ),
            stored(Duration::from_secs(60), false)
        );
        assert_eq!(
            judge(
                shared,
                false,
                206,
                &[("cache-control", "max-age=60")],
                Some(1)
            ),
            Verdict::Pass("status not cacheable")
        );
        let Verdict::Store { public, .. } = judge(
            shared,
            true,
            200,
            &[("cache-control", "max-age=60, must-revalidate")],
            Some(1),
        ) else {
            panic!("must-revalidate lets a shared cache store an authorized response");
        };
        assert!(public);
        assert_eq!(
            judge(
                PageCacheMode::Application,
                true,
                200,
                &[("cache-control", "max-age=60, must-revalidate")],
                Some(1)
            ),
            Verdict::Pass("request carries Authorization")
        );
    }

    #[test]
    fn vary_names_are_normalised() {
        let names = vary_names(&headers(&[
            ("vary", "Accept-Language, accept-language"),
            ("vary", "Cookie"),
        ]))
        .unwrap();
        assert_eq!(
            names,
            [
                HeaderName::from_static("accept-language"),
                HeaderName::from_static("cookie")
            ]
        );
    }
}
