//! What may be served from and stored in the page cache: the HTTP rules, in one place.
//!
//! The rules follow RFC 9111 for a shared cache, narrowed where a server-side page cache
//! must be stricter than a proxy (no `Set-Cookie`, no `no-cache` revalidation: such
//! responses are simply not stored).

use std::time::Duration;

use http::header::{AUTHORIZATION, CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode};

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
    pub(crate) statuses: Vec<StatusCode>,
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
            statuses: vec![StatusCode::OK],
            mode: PageCacheMode::Application,
            honour_request_no_cache: false,
        }
    }
}

/// Only safe, idempotent reads are cached; `HEAD` shares the `GET` entry.
pub(crate) fn is_cacheable_method(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

pub(crate) fn has_authorization(headers: &HeaderMap) -> bool {
    headers.contains_key(AUTHORIZATION)
}

/// Whether a response may be stored, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Store {
        fresh_for: Duration,
        /// The response said `public` or `s-maxage`: it may also answer requests that
        /// carry `Authorization`.
        public: bool,
    },
    Pass(&'static str),
}

/// The storage rules for a response to a `GET` (or `HEAD`) request. `body_size` is the
/// body's exact size when it is known before reading it (`None`: streaming).
pub(crate) fn verdict(
    policy: &PagePolicy,
    request_has_authorization: bool,
    status: StatusCode,
    headers: &HeaderMap,
    body_size: Option<u64>,
) -> Verdict {
    if !policy.statuses.contains(&status) {
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
    let directives = CacheControl::parse(headers);
    if directives.private {
        return Verdict::Pass("Cache-Control: private");
    }
    if directives.no_store {
        return Verdict::Pass("Cache-Control: no-store");
    }
    if directives.no_cache {
        return Verdict::Pass("Cache-Control: no-cache");
    }
    if vary_names(headers).is_err() {
        return Verdict::Pass("Vary: *");
    }
    let public = directives.public || directives.s_maxage.is_some();
    if request_has_authorization && !public {
        return Verdict::Pass("request carries Authorization");
    }
    let fresh_for = directives
        .s_maxage
        .or(directives.max_age)
        .map_or(policy.ttl, Duration::from_secs);
    if fresh_for.is_zero() {
        return Verdict::Pass("max-age=0");
    }
    Verdict::Store { fresh_for, public }
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

/// The `Cache-Control` directives of a response that matter to a shared cache.
#[derive(Debug, Default)]
pub(crate) struct CacheControl {
    pub(crate) public: bool,
    pub(crate) private: bool,
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
}

impl CacheControl {
    pub(crate) fn parse(headers: &HeaderMap) -> CacheControl {
        let mut found = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            // Unreadable bytes: assume the worst rather than cache by mistake.
            let Ok(text) = value.to_str() else {
                found.no_store = true;
                continue;
            };
            for directive in text.split(',').map(str::trim) {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive, None),
                };
                let seconds = || argument.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
                match name.to_ascii_lowercase().as_str() {
                    "public" => found.public = true,
                    // `private="Set-Cookie"` and `no-cache="..."` name fields; not storing
                    // at all is the safe reading.
                    "private" => found.private = true,
                    "no-store" => found.no_store = true,
                    "no-cache" => found.no_cache = true,
                    "max-age" => found.max_age = Some(seconds()),
                    "s-maxage" => found.s_maxage = Some(seconds()),
                    _ => {}
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn check(
        auth: bool,
        status: u16,
        pairs: &[(&'static str, &'static str)],
        size: Option<u64>,
    ) -> Verdict {
        verdict(
            &PagePolicy::default(),
            auth,
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            size,
        )
    }

    #[test]
    fn storage_rules() {
        let stored = Verdict::Store {
            fresh_for: DEFAULT_TTL,
            public: false,
        };
        assert_eq!(check(false, 200, &[], Some(10)), stored);
        assert_eq!(
            check(false, 404, &[], Some(10)),
            Verdict::Pass("status not cacheable")
        );
        assert_eq!(
            check(false, 200, &[], None),
            Verdict::Pass("streaming body")
        );
        assert_eq!(
            check(false, 200, &[], Some(DEFAULT_MAX_BODY + 1)),
            Verdict::Pass("body too large")
        );
        assert_eq!(
            check(false, 200, &[("set-cookie", "a=b")], Some(1)),
            Verdict::Pass("Set-Cookie")
        );
        assert_eq!(
            check(
                false,
                200,
                &[("cache-control", "max-age=60, Private")],
                Some(1)
            ),
            Verdict::Pass("Cache-Control: private")
        );
        assert_eq!(
            check(false, 200, &[("cache-control", "no-store")], Some(1)),
            Verdict::Pass("Cache-Control: no-store")
        );
        assert_eq!(
            check(
                false,
                200,
                &[("cache-control", "no-cache=\"set-cookie\"")],
                Some(1)
            ),
            Verdict::Pass("Cache-Control: no-cache")
        );
        assert_eq!(
            check(false, 200, &[("vary", "accept, *")], Some(1)),
            Verdict::Pass("Vary: *")
        );
        assert_eq!(
            check(true, 200, &[], Some(1)),
            Verdict::Pass("request carries Authorization")
        );
        assert_eq!(
            check(true, 200, &[("cache-control", "public")], Some(1)),
            Verdict::Store {
                fresh_for: DEFAULT_TTL,
                public: true
            }
        );
        assert_eq!(
            check(
                true,
                200,
                &[("cache-control", "max-age=5, s-maxage=30")],
                Some(1)
            ),
            Verdict::Store {
                fresh_for: Duration::from_secs(30),
                public: true
            }
        );
        assert_eq!(
            check(false, 200, &[("cache-control", "max-age=0")], Some(1)),
            Verdict::Pass("max-age=0")
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
