//! [`BaseKeyRef`]: the base key of a request, borrowed from the request itself. The hit
//! path probes an in-process store with it, so a hit builds no key (a lower-cased host,
//! a path, query pairs and an `Arc`, all freed again) before it answers.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use http::{HeaderMap, Uri};

use super::{
    encode_base, encode_length, key_hasher, request_host, request_scheme, KeyRules, PageKey, HTTP,
};
use crate::key::KeyRef;
use crate::page::request_fields::RequestFields;

/// The most query parameters a borrowed key holds; a request with more builds an owned
/// key instead.
const MAX_PARAMETERS: usize = 8;

/// A base key ([`PageKey::for_request`]) over the request's own strings. It hashes and
/// compares as the owned key of the same request does.
pub(crate) struct BaseKeyRef<'a> {
    rules: &'a KeyRules,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    scheme: &'static str,
    host: &'a str,
    query: [(&'a str, &'a str); MAX_PARAMETERS],
    parameters: usize,
    hash: u64,
}

impl<'a> BaseKeyRef<'a> {
    /// The borrowed base key of a request, when its parts need no rewriting: a host
    /// already in lower case, a known scheme, at most `MAX_PARAMETERS` query parameters.
    /// `None` sends the caller to the owned key, which handles every request.
    pub(crate) fn of(
        rules: &'a KeyRules,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        fields: RequestFields,
    ) -> Option<Self> {
        // Without a scheme in the URI or a proxy's word on it, `request_scheme` answers
        // `http` after two lookups that find nothing.
        let scheme = if uri.scheme().is_none() && !fields.forwarded_scheme() {
            HTTP
        } else {
            match request_scheme(uri, headers) {
                Cow::Borrowed(scheme) => scheme,
                Cow::Owned(_) => return None,
            }
        };
        let host = request_host(uri, headers)?;
        if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
            return None;
        }
        let mut query = [("", ""); MAX_PARAMETERS];
        let mut parameters = 0;
        if let (true, Some(text)) = (rules.query, uri.query()) {
            for pair in text.split('&').filter(|pair| !pair.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if !rules.ignore_query.is_empty() && rules.ignore_query.ignores(name) {
                    continue;
                }
                *query.get_mut(parameters)? = (name, value);
                parameters += 1;
            }
            // Stable, as the owned key's sort: repeated names keep their order.
            query[..parameters].sort_by(|a, b| a.0.cmp(b.0));
        }
        let mut hasher = key_hasher();
        let out = &mut |bytes: &[u8]| hasher.write(bytes);
        let pairs = query[..parameters].iter().copied();
        encode_base(out, &rules.prefix, scheme, host, uri.path(), pairs);
        // A base key has no variant values and generation 0.
        encode_length(out, 0);
        out(&0u64.to_be_bytes());
        Some(BaseKeyRef {
            rules,
            uri,
            headers,
            scheme,
            host,
            query,
            parameters,
            hash: hasher.finish(),
        })
    }
}

impl Hash for BaseKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl KeyRef for BaseKeyRef<'_> {
    type Key = PageKey;

    fn matches(&self, key: &PageKey) -> bool {
        let parts = &key.0.parts;
        key.0.hash == self.hash
            && parts.generation == 0
            && parts.vary.is_empty()
            && *parts.prefix == *self.rules.prefix
            && parts.scheme == self.scheme
            && *parts.host == *self.host
            && *parts.path == *self.uri.path()
            && parts.query.len() == self.parameters
            && parts
                .query
                .iter()
                .zip(&self.query[..self.parameters])
                .all(|((name, value), (n, v))| **name == **n && **value == **v)
    }

    fn to_key(&self) -> PageKey {
        PageKey::for_request(self.rules, self.uri, self.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HOST;
    use http::HeaderValue;
    use std::hash::BuildHasher;

    fn hash_of(value: &impl Hash) -> u64 {
        foldhash::fast::FixedState::with_seed(1).hash_one(value)
    }

    #[test]
    fn a_borrowed_key_hashes_and_matches_as_the_owned_one() {
        let rules = KeyRules::default();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("shop.example"));
        for uri in [
            "/books/312",
            "/s?radius=5&postcode=EC1",
            "/t?tag=b&tag=a&x",
            "/?",
        ] {
            let uri: Uri = uri.parse().unwrap();
            let owned = PageKey::for_request(&rules, &uri, &headers);
            let borrowed = BaseKeyRef::of(&rules, &uri, &headers, RequestFields::of(&headers))
                .expect("a plain request");
            assert_eq!(hash_of(&borrowed), hash_of(&owned), "{uri}");
            assert!(borrowed.matches(&owned), "{uri}");
            assert_eq!(borrowed.to_key(), owned);
        }
    }

    #[test]
    fn a_borrowed_key_tells_other_requests_apart() {
        let rules = KeyRules::default();
        let headers = HeaderMap::new();
        let uri: Uri = "/s?postcode=EC1&radius=15".parse().unwrap();
        let borrowed = BaseKeyRef::of(&rules, &uri, &headers, RequestFields::of(&headers)).unwrap();
        for other in [
            "/s?postcode=EC11&radius=5",
            "/s?postcode=EC1",
            "/t?postcode=EC1&radius=15",
        ] {
            let other = PageKey::for_request(&rules, &other.parse().unwrap(), &headers);
            assert!(!borrowed.matches(&other));
        }
        let https: Uri = "https://a.example/s?postcode=EC1&radius=15"
            .parse()
            .unwrap();
        let owned = PageKey::for_request(&rules, &https, &headers);
        assert!(!borrowed.matches(&owned));
    }

    #[test]
    fn requests_that_need_rewriting_take_the_owned_key() {
        let rules = KeyRules::default();
        let mut upper = HeaderMap::new();
        upper.insert(HOST, HeaderValue::from_static("Shop.Example"));
        assert!(BaseKeyRef::of(
            &rules,
            &"/".parse().unwrap(),
            &upper,
            RequestFields::of(&upper)
        )
        .is_none());
        let many: Uri = "/?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9".parse().unwrap();
        assert!(
            BaseKeyRef::of(&rules, &many, &HeaderMap::new(), RequestFields::default()).is_none()
        );
    }
}
