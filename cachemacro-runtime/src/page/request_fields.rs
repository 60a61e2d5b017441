//! [`RequestFields`]: which of the request header fields the page rules read are
//! present, found in one pass over the request's fields.
//!
//! Most requests carry none of them (a `Host`, an `Accept`, a `User-Agent`, cookies), and
//! looking each one up by name hashes it and probes the map: on a hit, half a dozen
//! lookups that find nothing cost more than the store's probe. One walk over the names
//! present, compared as the interned standard names they are, tells which lookups can
//! find anything.

use http::header::{
    AUTHORIZATION, CACHE_CONTROL, FORWARDED, IF_MODIFIED_SINCE, IF_NONE_MATCH, PRAGMA, UPGRADE,
};
use http::{HeaderMap, HeaderName};

/// The proxy's record of the scheme a client used, when the application sits behind one.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The request fields the page rules read that a request carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestFields(u8);

const DIRECTIVES: u8 = 1;
const AUTHORIZED: u8 = 1 << 1;
const UPGRADING: u8 = 1 << 2;
const FORWARDED_SCHEME: u8 = 1 << 3;
const CONDITIONS: u8 = 1 << 4;

impl RequestFields {
    /// The fields of `headers`, in one pass over the names present.
    pub(crate) fn of(headers: &HeaderMap) -> RequestFields {
        let mut present = 0;
        for name in headers.keys() {
            present |= if name == CACHE_CONTROL || name == PRAGMA {
                DIRECTIVES
            } else if name == AUTHORIZATION {
                AUTHORIZED
            } else if name == UPGRADE {
                UPGRADING
            } else if name == IF_NONE_MATCH || name == IF_MODIFIED_SINCE {
                CONDITIONS
            } else if name == X_FORWARDED_PROTO || name == FORWARDED {
                FORWARDED_SCHEME
            } else {
                0
            };
        }
        RequestFields(present)
    }

    /// `Cache-Control` or `Pragma`: the request may carry directives.
    pub(crate) fn directives(self) -> bool {
        self.0 & DIRECTIVES != 0
    }

    /// `Authorization`: a shared page answers it only if its response allows (RFC 9111
    /// §3.5).
    pub(crate) fn authorized(self) -> bool {
        self.0 & AUTHORIZED != 0
    }

    /// `Upgrade`: the request asks to switch protocols (a WebSocket handshake is a
    /// `GET`), and its response belongs to the connection, to pass through untouched.
    pub(crate) fn upgrading(self) -> bool {
        self.0 & UPGRADING != 0
    }

    /// `X-Forwarded-Proto` or `Forwarded`: a proxy may have said which scheme the client
    /// used.
    pub(crate) fn forwarded_scheme(self) -> bool {
        self.0 & FORWARDED_SCHEME != 0
    }

    /// `If-None-Match` or `If-Modified-Since`: the client may hold the page already.
    pub(crate) fn conditions(self) -> bool {
        self.0 & CONDITIONS != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn fields(names: &[&str]) -> RequestFields {
        let mut headers = HeaderMap::new();
        for name in names {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
        }
        RequestFields::of(&headers)
    }

    #[test]
    fn each_field_is_seen_in_any_case_and_position() {
        let plain = fields(&["host", "accept", "user-agent", "cookie"]);
        assert_eq!(plain, RequestFields::default());
        assert!(fields(&["host", "Cache-Control"]).directives());
        assert!(fields(&["PRAGMA"]).directives());
        assert!(fields(&["accept", "authorization"]).authorized());
        assert!(fields(&["connection", "upgrade"]).upgrading());
        assert!(fields(&["x-forwarded-proto"]).forwarded_scheme());
        assert!(fields(&["Forwarded"]).forwarded_scheme());
        assert!(fields(&["if-none-match"]).conditions());
        assert!(fields(&["if-modified-since"]).conditions());
        let all = fields(&[
            "cache-control",
            "authorization",
            "upgrade",
            "forwarded",
            "if-none-match",
        ]);
        assert!(
            all.directives()
                && all.authorized()
                && all.upgrading()
                && all.forwarded_scheme()
                && all.conditions()
        );
        let one = fields(&["authorization"]);
        assert!(
            !one.directives() && !one.upgrading() && !one.forwarded_scheme() && !one.conditions()
        );
    }
}
