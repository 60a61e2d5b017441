//! Validators and conditional requests (RFC 9110 §8.8, §13): the strong `ETag` the
//! application's cache gives a page without one, the client's conditions that turn a hit
//! into `304 Not Modified`, and the conditions the cache sends the inner service to
//! revalidate a stale page (RFC 9111 §4.3.1).

use http::header::{
    ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderValue};

use super::freshness::http_date;

/// A strong validator: a 128-bit hash of the exact bytes, so that any change of the body
/// changes it (RFC 9110 §8.8.3).
pub(super) fn strong_etag(body: &[u8]) -> HeaderValue {
    let hash = xxhash_rust::xxh3::xxh3_128(body);
    HeaderValue::try_from(format!("\"{hash:032x}\"")).expect("hex digits are a valid header value")
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored;
/// `*` matches any current representation.
pub(super) fn etag_matches(condition: &HeaderValue, etag: &HeaderValue) -> bool {
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

/// Whether the client's conditions say it already holds this page (§13.2.2): its
/// `If-None-Match` names the ETag, or, without `If-None-Match`, the page has not changed
/// since its `If-Modified-Since`.
pub(super) fn client_has_it(
    request: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    if let Some(condition) = request.get(IF_NONE_MATCH) {
        return etag.is_some_and(|etag| etag_matches(condition, etag));
    }
    let (Some(since), Some(modified)) = (request.get(IF_MODIFIED_SINCE), last_modified) else {
        return false;
    };
    match (http_date(since), http_date(modified)) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Removes the client's conditions from a request the cache forwards: they are about the
/// client's copy, and the cache wants a whole page to store (it answers the conditions
/// itself, from the stored page).
pub(super) fn strip_conditions(headers: &mut HeaderMap) {
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ] {
        headers.remove(name);
    }
}

/// Adds the conditions that ask the inner service whether the stored response (whose
/// headers are `stored`) is still current.
pub(super) fn add_revalidation_conditions(headers: &mut HeaderMap, stored: &HeaderMap) {
    if let Some(etag) = stored.get(ETAG) {
        headers.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.get(LAST_MODIFIED) {
        headers.insert(IF_MODIFIED_SINCE, modified.clone());
    }
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
    fn if_none_match_wins_over_if_modified_since() {
        let modified = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        let etag = HeaderValue::from_static("\"v1\"");
        let mut request = HeaderMap::new();
        request.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Mon, 07 Nov 1994 00:00:00 GMT"),
        );
        assert!(client_has_it(&request, Some(&etag), Some(&modified)));
        assert!(!client_has_it(&request, Some(&etag), None));
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"v0\""));
        assert!(!client_has_it(&request, Some(&etag), Some(&modified)));
        let mut older = HeaderMap::new();
        older.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Sat, 05 Nov 1994 00:00:00 GMT"),
        );
        assert!(!client_has_it(&older, Some(&etag), Some(&modified)));
    }

    #[test]
    fn revalidation_replaces_the_clients_conditions_with_the_caches() {
        let mut stored = HeaderMap::new();
        stored.insert(ETAG, HeaderValue::from_static("\"v1\""));
        stored.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let mut request = HeaderMap::new();
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"client\""));
        request.insert(IF_MATCH, HeaderValue::from_static("*"));
        strip_conditions(&mut request);
        assert!(request.is_empty());
        add_revalidation_conditions(&mut request, &stored);
        assert_eq!(request[IF_NONE_MATCH], "\"v1\"");
        assert_eq!(request[IF_MODIFIED_SINCE], "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn etags_differ_with_the_body() {
        assert_ne!(strong_etag(b"a"), strong_etag(b"b"));
        assert_eq!(strong_etag(b"a"), strong_etag(b"a"));
    }
}
