//! The page cache's validators: the strong `ETag` it gives a page without one, and the
//! `If-None-Match` comparison that turns a hit into `304 Not Modified`.

use http::HeaderValue;

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
