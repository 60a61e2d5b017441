//! [`PageKey`]: which stored page answers a request.
//!
//! The key is a structure compared field by field, never a concatenation of strings, so
//! `?postcode=EC1&radius=15` and `?postcode=EC11&radius=5` cannot collide the way a key
//! formatted as `'{}{}'.format(postcode, radius)` does. [`PageKey::to_bytes`] gives the same
//! guarantee to stores that need bytes: every part is length-prefixed.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

/// The cache key of one page: prefix, host, path, canonical query, and the values of the
/// headers the page varies on.
///
/// It does not include the method: a `HEAD` is answered from the `GET` entry.
///
/// ```
/// use cachemacro_runtime::PageKey;
///
/// // Query parameters are put in a canonical order (stable by name).
/// let a = PageKey::from_uri("http://shop.example/stores?radius=5&postcode=EC1");
/// let b = PageKey::from_uri("http://shop.example/stores?postcode=EC1&radius=5");
/// assert_eq!(a, b);
///
/// // Parts are delimited, so shifting characters between parameters changes the key.
/// let c = PageKey::from_uri("http://shop.example/stores?postcode=EC15&radius=");
/// assert_ne!(a, c);
/// assert_ne!(a.to_bytes(), c.to_bytes());
/// ```
#[derive(Clone)]
pub struct PageKey(Arc<Keyed>);

/// The parts with their hash, computed once: a store hashes the key on every lookup, and
/// hashing eight bytes beats hashing every part again with the store's hasher.
struct Keyed {
    hash: u64,
    parts: KeyParts,
}

#[derive(PartialEq, Eq)]
struct KeyParts {
    prefix: Arc<str>,
    host: Box<str>,
    path: Box<str>,
    query: Vec<(Box<str>, Box<str>)>,
    vary: Vec<(HeaderName, Vec<HeaderValue>)>,
    /// Which generation of a page's variants this key belongs to; `0` for a base key.
    /// Invalidating a page starts a new generation, so variants stored before can never
    /// be found again (their header values cannot be enumerated to remove them).
    generation: u64,
}

/// How the request's URI and headers become a key: the configured part of a page policy.
///
/// The `vary` headers are not part of the base key: like the names of a response's
/// `Vary`, they select a variant under it (see [`PageKey::variant`]), so that one
/// invalidation of the base key drops every variant.
#[derive(Clone, Debug)]
pub(crate) struct KeyRules {
    pub(crate) prefix: Arc<str>,
    pub(crate) query: bool,
    pub(crate) vary: Vec<HeaderName>,
}

impl Default for KeyRules {
    fn default() -> Self {
        KeyRules {
            prefix: Arc::from(""),
            query: true,
            vary: Vec::new(),
        }
    }
}

impl PageKey {
    /// The key of a request for `uri` without any headers (the host, if any, is taken from
    /// the URI), with an empty prefix and the query string included.
    ///
    /// ```
    /// use cachemacro_runtime::PageKey;
    ///
    /// let key = PageKey::from_uri("/books/312?lang=en");
    /// assert_eq!(key.path(), "/books/312");
    /// assert_eq!(key.host(), "");
    /// ```
    pub fn from_uri(uri: &str) -> PageKey {
        let uri: Uri = uri.parse().unwrap_or_else(|_| Uri::from_static("/"));
        PageKey::for_request(&KeyRules::default(), &uri, &HeaderMap::new())
    }

    /// The base key of a request: prefix, host, path and query; no header values.
    pub(crate) fn for_request(rules: &KeyRules, uri: &Uri, headers: &HeaderMap) -> PageKey {
        let host = match uri.authority() {
            Some(authority) => authority.as_str().to_ascii_lowercase(),
            None => headers
                .get(HOST)
                .and_then(|host| host.to_str().ok())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        };
        let query = match (rules.query, uri.query()) {
            (true, Some(query)) => canonical_query(query),
            _ => Vec::new(),
        };
        PageKey::new(KeyParts {
            prefix: Arc::clone(&rules.prefix),
            host: host.into(),
            path: uri.path().into(),
            query,
            vary: Vec::new(),
            generation: 0,
        })
    }

    /// This base key narrowed to one variant: the request's values of `names` (the `vary`
    /// option and the response's `Vary`) in generation `generation`.
    pub(crate) fn variant(
        &self,
        names: &[HeaderName],
        headers: &HeaderMap,
        generation: u64,
    ) -> PageKey {
        let base = &self.0.parts;
        let vary = header_values(names, headers);
        PageKey::new(KeyParts {
            prefix: Arc::clone(&base.prefix),
            host: base.host.clone(),
            path: base.path.clone(),
            query: base.query.clone(),
            vary,
            generation,
        })
    }

    /// Whether this key is `base` or one of its variants (of any generation): the keys an
    /// invalidation of `base` must overtake.
    pub(crate) fn is_page_of(&self, base: &PageKey) -> bool {
        let (key, base) = (&self.0.parts, &base.0.parts);
        key.prefix == base.prefix
            && key.host == base.host
            && key.path == base.path
            && key.query == base.query
    }

    fn new(parts: KeyParts) -> PageKey {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        parts.encode(&mut |bytes| hasher.update(bytes));
        PageKey(Arc::new(Keyed {
            hash: hasher.digest(),
            parts,
        }))
    }

    /// The host (and port) the request was for, lower-cased; empty if it named none.
    ///
    /// ```
    /// use cachemacro_runtime::PageKey;
    ///
    /// assert_eq!(PageKey::from_uri("http://Shop.Example:8080/").host(), "shop.example:8080");
    /// ```
    pub fn host(&self) -> &str {
        &self.0.parts.host
    }

    /// The request's path.
    ///
    /// ```
    /// use cachemacro_runtime::PageKey;
    ///
    /// assert_eq!(PageKey::from_uri("/books/312?lang=en").path(), "/books/312");
    /// ```
    pub fn path(&self) -> &str {
        &self.0.parts.path
    }

    /// An injective byte encoding of the key, for stores that key by bytes (a remote
    /// server, a file name hash): every part is length-prefixed, so two different keys
    /// never encode to the same bytes.
    ///
    /// ```
    /// use cachemacro_runtime::PageKey;
    ///
    /// let one = PageKey::from_uri("/stores?postcode=EC1&radius=15");
    /// let two = PageKey::from_uri("/stores?postcode=EC11&radius=5");
    /// assert_ne!(one.to_bytes(), two.to_bytes());
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.0.parts.path.len());
        self.0
            .parts
            .encode(&mut |bytes| out.extend_from_slice(bytes));
        out
    }
}

impl KeyParts {
    /// Feeds the injective encoding of the parts to `out`, piece by piece.
    fn encode(&self, out: &mut impl FnMut(&[u8])) {
        fn length(out: &mut impl FnMut(&[u8]), length: usize) {
            out(&(length as u64).to_be_bytes());
        }
        fn part(out: &mut impl FnMut(&[u8]), bytes: &[u8]) {
            length(out, bytes.len());
            out(bytes);
        }
        part(out, self.prefix.as_bytes());
        part(out, self.host.as_bytes());
        part(out, self.path.as_bytes());
        length(out, self.query.len());
        for (name, value) in &self.query {
            part(out, name.as_bytes());
            part(out, value.as_bytes());
        }
        length(out, self.vary.len());
        for (name, values) in &self.vary {
            part(out, name.as_str().as_bytes());
            length(out, values.len());
            for value in values {
                part(out, value.as_bytes());
            }
        }
        out(&self.generation.to_be_bytes());
    }
}

impl PartialEq for PageKey {
    fn eq(&self, other: &PageKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.parts == other.0.parts)
    }
}

impl Eq for PageKey {}

impl Hash for PageKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl fmt::Debug for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.0.parts;
        f.debug_struct("PageKey")
            .field("prefix", &key.prefix)
            .field("host", &key.host)
            .field("path", &key.path)
            .field("query", &key.query)
            .field("vary", &key.vary)
            .field("generation", &key.generation)
            .finish()
    }
}

/// Query parameters as `(name, value)` pairs, stably sorted by name: the order of
/// distinct names does not matter to an application, the order of a repeated name
/// (`?tag=a&tag=b`) may. Values stay percent-encoded as sent.
fn canonical_query(query: &str) -> Vec<(Box<str>, Box<str>)> {
    let mut pairs: Vec<(Box<str>, Box<str>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.into(), value.into()),
            None => (pair.into(), "".into()),
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// Every value of each named header (absent headers give an empty list, which differs
/// from a header present with an empty value).
pub(crate) fn header_values(
    names: &[HeaderName],
    headers: &HeaderMap,
) -> Vec<(HeaderName, Vec<HeaderValue>)> {
    names
        .iter()
        .map(|name| {
            (
                name.clone(),
                headers.get_all(name).iter().cloned().collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> PageKey {
        PageKey::from_uri(uri)
    }

    #[test]
    fn query_order_is_canonical_but_repeats_keep_their_order() {
        assert_eq!(key("/s?b=2&a=1"), key("/s?a=1&b=2"));
        assert_ne!(key("/s?t=1&t=2"), key("/s?t=2&t=1"));
        assert_eq!(key("/s?a=1&&b=2"), key("/s?a=1&b=2"));
    }

    #[test]
    fn parts_cannot_bleed_into_each_other() {
        let cases = [
            "/s?postcode=EC1&radius=15",
            "/s?postcode=EC11&radius=5",
            "/s?a=1=2",
            "/s?a=1&=2",
            "/s?a",
            "/s?a=",
            "/s",
            "/s?",
            "/s%3Fa=1",
        ];
        for (i, one) in cases.iter().enumerate() {
            for two in &cases[i + 1..] {
                let (one_key, two_key) = (key(one), key(two));
                if one_key != two_key {
                    assert_ne!(one_key.to_bytes(), two_key.to_bytes(), "{one} vs {two}");
                }
            }
        }
        assert_ne!(
            key("/s?postcode=EC1&radius=15"),
            key("/s?postcode=EC11&radius=5")
        );
    }

    #[test]
    fn host_and_vary_values_are_part_of_the_key() {
        let rules = KeyRules::default();
        let uri = Uri::from_static("/books/1");
        let mut english = HeaderMap::new();
        english.insert(HOST, HeaderValue::from_static("a.example"));
        english.insert("accept-language", HeaderValue::from_static("en"));
        let mut french = english.clone();
        french.insert("accept-language", HeaderValue::from_static("fr"));
        let mut other_host = english.clone();
        other_host.insert(HOST, HeaderValue::from_static("b.example"));
        let base = PageKey::for_request(&rules, &uri, &english);
        assert_eq!(base, PageKey::for_request(&rules, &uri, &french));
        assert_ne!(base, PageKey::for_request(&rules, &uri, &other_host));
        let names = [HeaderName::from_static("accept-language")];
        assert_ne!(
            base.variant(&names, &english, 1),
            base.variant(&names, &french, 1)
        );
        assert_eq!(
            base.variant(&names, &english, 1),
            base.variant(&names, &english.clone(), 1)
        );
        assert_ne!(
            base.variant(&names, &english, 1),
            base.variant(&names, &english, 2)
        );
        assert_ne!(base, base.variant(&names, &english, 0));
    }

    #[test]
    fn a_page_owns_its_variants_of_every_generation_and_no_other_page() {
        let base = key("http://a.example/books/1?lang=en");
        let mut headers = HeaderMap::new();
        headers.insert("accept-language", HeaderValue::from_static("fr"));
        let names = [HeaderName::from_static("accept-language")];
        assert!(base.is_page_of(&base));
        assert!(base.variant(&names, &headers, 7).is_page_of(&base));
        for other in [
            "http://b.example/books/1?lang=en",
            "http://a.example/books/2?lang=en",
            "http://a.example/books/1?lang=fr",
            "http://a.example/books/1",
        ] {
            assert!(!key(other).is_page_of(&base), "{other}");
            assert!(
                !key(other).variant(&names, &headers, 7).is_page_of(&base),
                "{other}"
            );
        }
    }
}
