//! [`PageKey`]: which stored page answers a request.
//!
//! The key is a structure compared field by field, never a concatenation of strings, so
//! `?postcode=EC1&radius=15` and `?postcode=EC11&radius=5` cannot collide the way a key
//! formatted as `'{}{}'.format(postcode, radius)` does. [`PageKey::to_bytes`] gives the same
//! guarantee to stores that need bytes: every part is length-prefixed.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::header::{FORWARDED, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::query_filter::IgnoredParameters;
use super::request_fields::X_FORWARDED_PROTO;

/// The cache key of one page: prefix, scheme, host, path, canonical query, and the
/// values of the headers the page varies on.
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
    scheme: Cow<'static, str>,
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
    /// Query parameters left out of the key (`ignore_query`).
    pub(crate) ignore_query: IgnoredParameters,
    pub(crate) vary: Vec<HeaderName>,
}

impl Default for KeyRules {
    fn default() -> Self {
        KeyRules {
            prefix: Arc::from(""),
            query: true,
            ignore_query: IgnoredParameters::default(),
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

    /// The base key of a request: prefix, scheme, host, path and query; no header values.
    pub(crate) fn for_request(rules: &KeyRules, uri: &Uri, headers: &HeaderMap) -> PageKey {
        PageKey::for_scheme(rules, request_scheme(uri, headers), uri, headers)
    }

    /// The base key of a request for `uri` under every scheme a page can be served with:
    /// what an invalidation of `uri` removes.
    pub(crate) fn for_every_scheme(rules: &KeyRules, uri: &Uri) -> [PageKey; 2] {
        let headers = HeaderMap::new();
        [HTTP, HTTPS].map(|scheme| PageKey::for_scheme(rules, Cow::Borrowed(scheme), uri, &headers))
    }

    fn for_scheme(
        rules: &KeyRules,
        scheme: Cow<'static, str>,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> PageKey {
        let host = request_host(uri, headers)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let query = match (rules.query, uri.query()) {
            (true, Some(query)) => canonical_query(query, &rules.ignore_query),
            _ => Vec::new(),
        };
        PageKey::new(KeyParts {
            prefix: Arc::clone(&rules.prefix),
            scheme,
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
            scheme: base.scheme.clone(),
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
            && key.scheme == base.scheme
            && key.host == base.host
            && key.path == base.path
            && key.query == base.query
    }

    fn new(parts: KeyParts) -> PageKey {
        let mut hasher = key_hasher();
        parts.encode(&mut |bytes| hasher.write(bytes));
        PageKey(Arc::new(Keyed {
            hash: hasher.finish(),
            parts,
        }))
    }

    /// A hash of the request this key stands for, without the variant generation: an
    /// invalidation changes a variant's key but not the request, which a count of
    /// distinct requests must not see twice.
    pub(crate) fn request_hash(&self) -> u64 {
        let parts = &self.0.parts;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        parts.encode_request(&mut |bytes| hasher.update(bytes));
        hasher.digest()
    }

    /// The scheme the request was made with: `http` or `https` (from the URI, else from
    /// `X-Forwarded-Proto` or `Forwarded` set by a proxy), `http` when nothing says.
    ///
    /// ```
    /// use cachemacro_runtime::PageKey;
    ///
    /// assert_eq!(PageKey::from_uri("https://shop.example/").scheme(), "https");
    /// assert_eq!(PageKey::from_uri("/books/312").scheme(), "http");
    /// assert_ne!(
    ///     PageKey::from_uri("https://shop.example/"),
    ///     PageKey::from_uri("http://shop.example/"),
    /// );
    /// ```
    pub fn scheme(&self) -> &str {
        &self.0.parts.scheme
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
        self.encode_request(out);
        out(&self.generation.to_be_bytes());
    }

    /// Every part but the generation, injectively.
    fn encode_request(&self, out: &mut impl FnMut(&[u8])) {
        let query = self.query.iter().map(|(name, value)| (&**name, &**value));
        encode_base(
            out,
            &self.prefix,
            &self.scheme,
            &self.host,
            &self.path,
            query,
        );
        encode_length(out, self.vary.len());
        for (name, values) in &self.vary {
            encode_part(out, name.as_str().as_bytes());
            encode_length(out, values.len());
            for value in values {
                encode_part(out, value.as_bytes());
            }
        }
    }
}

fn encode_length(out: &mut impl FnMut(&[u8]), length: usize) {
    out(&(length as u64).to_be_bytes());
}

fn encode_part(out: &mut impl FnMut(&[u8]), bytes: &[u8]) {
    encode_length(out, bytes.len());
    out(bytes);
}

/// The injective encoding of the parts of a base key, the same for an owned key and
/// its borrowed form ([`BaseKeyRef`]), so that both hash alike.
fn encode_base<'q>(
    out: &mut impl FnMut(&[u8]),
    prefix: &str,
    scheme: &str,
    host: &str,
    path: &str,
    query: impl ExactSizeIterator<Item = (&'q str, &'q str)>,
) {
    encode_part(out, prefix.as_bytes());
    encode_part(out, scheme.as_bytes());
    encode_part(out, host.as_bytes());
    encode_part(out, path.as_bytes());
    encode_length(out, query.len());
    for (name, value) in query {
        encode_part(out, name.as_bytes());
        encode_part(out, value.as_bytes());
    }
}

/// The hash a key carries: computed once per key, so any fast hasher with a fixed seed
/// serves (keys are compared in full after it; stores outside the process key by
/// [`PageKey::to_bytes`], never by this hash).
fn key_hasher() -> impl Hasher {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x7061_6765_6b65_7973).build_hasher()
}

/// A page key is its own borrowed form, so that an in-process store answers a lookup
/// without a future (see `PageStore::probe`).
impl crate::key::KeyRef for PageKey {
    type Key = PageKey;

    fn matches(&self, key: &PageKey) -> bool {
        self == key
    }

    fn to_key(&self) -> PageKey {
        self.clone()
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
            .field("scheme", &key.scheme)
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
/// (`?tag=a&tag=b`) may. Values stay percent-encoded as sent. Parameters `ignored`
/// matches are left out.
fn canonical_query(query: &str, ignored: &IgnoredParameters) -> Vec<(Box<str>, Box<str>)> {
    let mut pairs: Vec<(Box<str>, Box<str>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(name, _)| ignored.is_empty() || !ignored.ignores(name))
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// The normalised value of each named header (see [`vary_value`]).
pub(crate) fn header_values(
    names: &[HeaderName],
    headers: &HeaderMap,
) -> Vec<(HeaderName, Vec<HeaderValue>)> {
    names
        .iter()
        .map(|name| (name.clone(), vary_value(name, headers)))
        .collect()
}

/// The request's value of the header `name` as a variant is keyed by: its lines joined
/// as one comma list, without the whitespace around `,` `;` `=`, runs of spaces as one,
/// and lower-cased for the `Accept` family, whose values are case-insensitive (RFC 9110
/// §12.5): `EN-gb , fr ; q=0.5` is `en-gb,fr;q=0.5`. Quoted strings are kept as sent.
/// An absent header gives an empty list, which differs from a header sent empty.
///
/// Other headers (`Cookie`, `Authorization`, any unknown one) keep their case: their
/// values may mean something else in another case.
pub(crate) fn vary_value(name: &HeaderName, headers: &HeaderMap) -> Vec<HeaderValue> {
    let mut lines = headers.get_all(name).iter();
    let Some(first) = lines.next() else {
        return Vec::new();
    };
    let mut joined = first.as_bytes().to_vec();
    for line in lines {
        joined.push(b',');
        joined.extend_from_slice(line.as_bytes());
    }
    let lower = matches!(
        name.as_str(),
        "accept" | "accept-charset" | "accept-encoding" | "accept-language"
    );
    let normal = normalised(&joined, lower);
    let value = if normal == first.as_bytes() {
        first.clone()
    } else {
        HeaderValue::from_bytes(&normal)
            .expect("bytes taken from header values, less some spaces, are a header value")
    };
    vec![value]
}

/// `value` with the whitespace `vary_value` drops, dropped.
fn normalised(value: &[u8], lower: bool) -> Vec<u8> {
    let is_space = |byte: u8| byte == b' ' || byte == b'\t';
    let is_separator = |byte: u8| matches!(byte, b',' | b';' | b'=');
    let mut out = Vec::with_capacity(value.len());
    let mut quoted = false;
    let mut escaped = false;
    // A run of spaces waits here until what follows it shows whether it is kept.
    let mut pending_space = false;
    for &byte in value {
        if quoted {
            out.push(byte);
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        if is_space(byte) {
            pending_space = true;
            continue;
        }
        let after_separator = out.last().is_some_and(|&last| is_separator(last));
        if pending_space && !out.is_empty() && !after_separator && !is_separator(byte) {
            out.push(b' ');
        }
        pending_space = false;
        if byte == b'"' {
            quoted = true;
        }
        out.push(if lower {
            byte.to_ascii_lowercase()
        } else {
            byte
        });
    }
    out
}

const HTTP: &str = "http";
const HTTPS: &str = "https";

/// The scheme of a request: the URI's when it has one, else the first
/// `X-Forwarded-Proto`, else the first `proto=` of `Forwarded` (RFC 7239), else `http`.
/// From headers only `http` and `https` are taken (any other value reads as `http`), so
/// that a client cannot make up schemes to multiply the entries of a page.
/// The host (and port) a request is for, as sent: the URI's authority, else the `Host`
/// header; empty when it names none, `None` when `Host` is not text. Keys lower-case it.
pub(crate) fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    match uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => match headers.get(HOST) {
            Some(host) => host.to_str().ok(),
            None => Some(""),
        },
    }
}

fn request_scheme(uri: &Uri, headers: &HeaderMap) -> Cow<'static, str> {
    if let Some(scheme) = uri.scheme_str() {
        // Every HTTP/2 request names its scheme: the two known ones allocate nothing.
        return if scheme.eq_ignore_ascii_case(HTTP) {
            Cow::Borrowed(HTTP)
        } else if scheme.eq_ignore_ascii_case(HTTPS) {
            Cow::Borrowed(HTTPS)
        } else {
            Cow::Owned(scheme.to_ascii_lowercase())
        };
    }
    let forwarded_proto = headers
        .get(X_FORWARDED_PROTO)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next());
    let proto = forwarded_proto.or_else(|| {
        let first = headers.get(FORWARDED)?.to_str().ok()?.split(',').next()?;
        first.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("proto")
                .then(|| value.trim().trim_matches('"'))
        })
    });
    match proto.map(str::trim) {
        Some(proto) if proto.eq_ignore_ascii_case(HTTPS) => Cow::Borrowed(HTTPS),
        _ => Cow::Borrowed(HTTP),
    }
}

mod borrowed;
#[cfg(test)]
mod tests;

pub(crate) use self::borrowed::BaseKeyRef;
