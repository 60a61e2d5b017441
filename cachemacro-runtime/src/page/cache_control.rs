//! The `Cache-Control` field (RFC 9111 §5.2), read once for each side: the directives of
//! a response that decide whether and how long it is stored, and those of a request that
//! decide what stored page may answer it.

use std::time::Duration;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::HeaderMap;

use super::request_fields::RequestFields;

/// Calls `each` with every directive of the `Cache-Control` lines of `headers`: its name
/// lower-cased and its argument unquoted. Returns `false` if a line is not text, which
/// both sides read as the most cautious directive.
fn for_each_directive(headers: &HeaderMap, mut each: impl FnMut(&str, Option<&str>)) -> bool {
    let mut readable = true;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            readable = false;
            continue;
        };
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive, None),
            };
            each(&name.to_ascii_lowercase(), argument);
        }
    }
    readable
}

/// A delta-seconds argument (§1.2.2). A value too large to represent is the largest one;
/// a missing or invalid argument is `None`.
fn seconds(argument: Option<&str>) -> Option<Duration> {
    let digits = argument?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(digits.parse().unwrap_or(u64::MAX / 2)))
}

/// The directives of a response that a cache acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ResponseDirectives {
    pub(crate) public: bool,
    pub(crate) private: bool,
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) s_maxage: Option<Duration>,
    /// RFC 5861 §3: how long past its freshness the page may still answer while one
    /// request refreshes it.
    pub(crate) stale_while_revalidate: Option<Duration>,
    /// RFC 5861 §4: how long past its freshness the page may answer when refreshing it
    /// fails (a 500, 502, 503 or 504, or an error of the inner service).
    pub(crate) stale_if_error: Option<Duration>,
}

impl ResponseDirectives {
    pub(crate) fn parse(headers: &HeaderMap) -> ResponseDirectives {
        let mut found = ResponseDirectives::default();
        let readable = for_each_directive(headers, |name, argument| match name {
            "public" => found.public = true,
            // `private="Set-Cookie"` and `no-cache="..."` name fields; the whole response
            // is the safe reading of both.
            "private" => found.private = true,
            "no-store" => found.no_store = true,
            "no-cache" => found.no_cache = true,
            "must-revalidate" => found.must_revalidate = true,
            "proxy-revalidate" => found.proxy_revalidate = true,
            // §4.2.1: an invalid max-age is stale at once.
            "max-age" => found.max_age = Some(seconds(argument).unwrap_or_default()),
            "s-maxage" => found.s_maxage = Some(seconds(argument).unwrap_or_default()),
            // An invalid window grants nothing, as if absent.
            "stale-while-revalidate" => found.stale_while_revalidate = seconds(argument),
            "stale-if-error" => found.stale_if_error = seconds(argument),
            _ => {}
        });
        // Unreadable bytes: assume the worst rather than cache by mistake.
        found.no_store |= !readable;
        found
    }
}

/// The directives of a request, before the cache decides which of them it obeys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    pub(crate) no_cache: bool,
    pub(crate) no_store: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<Duration>,
    /// `Some(None)`: `max-stale` without a value, any staleness.
    pub(crate) max_stale: Option<Option<Duration>>,
    pub(crate) min_fresh: Option<Duration>,
}

impl RequestDirectives {
    /// The request's directives; with `Pragma: no-cache` read as `no-cache` when the
    /// request has no `Cache-Control` (§5.4).
    pub(crate) fn parse(headers: &HeaderMap, fields: RequestFields) -> RequestDirectives {
        let mut found = RequestDirectives::default();
        if !fields.directives() {
            return found;
        }
        if !headers.contains_key(CACHE_CONTROL) {
            found.no_cache = headers.get_all(PRAGMA).iter().any(|value| {
                value.to_str().is_ok_and(|text| {
                    text.split(',')
                        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
                })
            });
            return found;
        }
        for_each_directive(headers, |name, argument| match name {
            "no-cache" => found.no_cache = true,
            "no-store" => found.no_store = true,
            "only-if-cached" => found.only_if_cached = true,
            "max-age" => found.max_age = seconds(argument),
            "max-stale" => found.max_stale = Some(seconds(argument)),
            "min-fresh" => found.min_fresh = seconds(argument),
            _ => {}
        });
        found
    }

    /// Whether the request says nothing the cache acts on: the common case, checked
    /// before any other rule.
    pub(crate) fn is_empty(&self) -> bool {
        *self == RequestDirectives::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::header_map as headers;
    use http::HeaderValue;

    impl RequestDirectives {
        fn parse_all(headers: &HeaderMap) -> RequestDirectives {
            RequestDirectives::parse(headers, RequestFields::of(headers))
        }
    }

    #[test]
    fn response_directives_are_read_from_every_line_in_any_case() {
        let found = ResponseDirectives::parse(&headers(&[
            ("cache-control", "Public, max-age=\"60\""),
            (
                "cache-control",
                "S-MaxAge=120, must-revalidate, proxy-revalidate",
            ),
        ]));
        assert!(found.public && found.must_revalidate && found.proxy_revalidate);
        assert_eq!(found.max_age, Some(Duration::from_secs(60)));
        assert_eq!(found.s_maxage, Some(Duration::from_secs(120)));
    }

    #[test]
    fn an_invalid_max_age_is_zero_and_unreadable_bytes_are_no_store() {
        let found = ResponseDirectives::parse(&headers(&[("cache-control", "max-age=soon")]));
        assert_eq!(found.max_age, Some(Duration::ZERO));
        let mut map = HeaderMap::new();
        map.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=9\xff").unwrap(),
        );
        assert!(ResponseDirectives::parse(&map).no_store);
    }

    #[test]
    fn stale_extensions_are_windows_and_an_invalid_one_grants_nothing() {
        let found = ResponseDirectives::parse(&headers(&[(
            "cache-control",
            "max-age=60, Stale-While-Revalidate=30, stale-if-error=\"86400\"",
        )]));
        assert_eq!(found.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(found.stale_if_error, Some(Duration::from_secs(86_400)));
        let invalid = ResponseDirectives::parse(&headers(&[(
            "cache-control",
            "stale-while-revalidate=soon, stale-if-error",
        )]));
        assert_eq!(
            (invalid.stale_while_revalidate, invalid.stale_if_error),
            (None, None)
        );
    }

    #[test]
    fn request_directives_and_pragma() {
        let found = RequestDirectives::parse_all(&headers(&[(
            "cache-control",
            "max-age=0, max-stale, min-fresh=5, only-if-cached, no-store",
        )]));
        assert_eq!(found.max_age, Some(Duration::ZERO));
        assert_eq!(found.max_stale, Some(None));
        assert_eq!(found.min_fresh, Some(Duration::from_secs(5)));
        assert!(found.only_if_cached && found.no_store && !found.no_cache);
        let limited = RequestDirectives::parse_all(&headers(&[("cache-control", "max-stale=30")]));
        assert_eq!(limited.max_stale, Some(Some(Duration::from_secs(30))));

        assert!(RequestDirectives::parse_all(&headers(&[("pragma", "no-cache")])).no_cache);
        // Cache-Control wins over Pragma.
        let both = headers(&[("pragma", "no-cache"), ("cache-control", "max-stale")]);
        assert!(!RequestDirectives::parse_all(&both).no_cache);
        assert!(RequestDirectives::parse_all(&HeaderMap::new()).is_empty());
    }
}
