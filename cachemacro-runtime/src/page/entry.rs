//! The value model of the page cache: what is stored under a [`PageKey`](super::PageKey) ([`CachedPage`]:
//! a rendered page or a variant index), and how a stored page answers a request (fresh,
//! stale, `304 Not Modified`, with the headers the cache stamps).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, ETAG, EXPIRES, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::etag::etag_matches;
use super::key::vary_value;

/// The header that tells whether a response came from the cache.
pub(crate) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const AGE: HeaderName = http::header::AGE;

/// What the page cache keeps under a [`PageKey`](super::PageKey): a rendered page (status, headers,
/// body, validators, when it was stored), or the list of headers a page varies on.
///
/// Values are cheap to clone (reference-counted). Name the type to give the cache a
/// store of your own:
///
/// ```
/// use cachemacro_runtime::{CachedPage, MemoryStore, PageCache, PageKey};
///
/// let store: MemoryStore<PageKey, CachedPage> = MemoryStore::builder().capacity(5_000).build();
/// let cache = PageCache::with_store(store);
/// assert_eq!(cache.stats().entries, 0);
/// ```
#[derive(Clone)]
pub struct CachedPage(pub(super) Stored);

/// What a [`CachedPage`] holds.
#[derive(Clone)]
pub(super) enum Stored {
    Page(Arc<Page>),
    /// Kept under a base key whose page varies on request headers: the headers' names,
    /// and the generation of the variant keys (see `PageKey::variant`).
    Variants {
        names: Arc<[HeaderName]>,
        generation: u64,
    },
    /// Never stored: handed by a single-flight leader to its followers to say "this
    /// response was not cacheable, render your own".
    Pass,
}

/// A rendered page as the cache keeps it.
pub(super) struct Page {
    pub(super) status: StatusCode,
    /// The headers of a hit, ready to clone: the handler's, with the `ETag`, `Vary`,
    /// `Content-Length`, `Expires`, `Cache-Control`, `Age` and `x-cache` the cache adds
    /// (the last three are rewritten per response). Cloning one map that already holds
    /// every name keeps the hit path at a single allocation for headers.
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) etag: HeaderValue,
    pub(super) stored_at: SystemTime,
    pub(super) fresh_for: Duration,
    /// May answer requests carrying `Authorization` (`public` or `s-maxage`).
    pub(super) public: bool,
    /// The handler set no `Cache-Control`: the cache writes `max-age=<remaining>`.
    pub(super) stamp_max_age: bool,
    /// The request header values this page was rendered for (its variant).
    pub(super) vary: Vec<(HeaderName, Vec<HeaderValue>)>,
}

impl CachedPage {
    /// The status of the stored page; `None` for a variant index.
    ///
    /// ```
    /// # use cachemacro_runtime::CachedPage;
    /// fn describe(entry: &CachedPage) -> String {
    ///     match entry.status() {
    ///         Some(status) => format!("a page ({status}, {} bytes)", entry.body().map_or(0, <[u8]>::len)),
    ///         None => "the list of headers a page varies on".to_owned(),
    ///     }
    /// }
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        match &self.0 {
            Stored::Page(page) => Some(page.status),
            _ => None,
        }
    }

    /// The body of the stored page; `None` for a variant index.
    ///
    /// ```
    /// # use cachemacro_runtime::CachedPage;
    /// fn size(entry: &CachedPage) -> usize {
    ///     entry.body().map_or(0, <[u8]>::len)
    /// }
    /// ```
    pub fn body(&self) -> Option<&[u8]> {
        match &self.0 {
            Stored::Page(page) => Some(&page.body),
            _ => None,
        }
    }
}

impl fmt::Debug for CachedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Stored::Page(page) => f
                .debug_struct("CachedPage")
                .field("status", &page.status)
                .field("bytes", &page.body.len())
                .field("etag", &page.etag)
                .finish_non_exhaustive(),
            Stored::Variants { names, .. } => f
                .debug_struct("CachedPage")
                .field("varies_on", names)
                .finish(),
            Stored::Pass => f.write_str("CachedPage(pass)"),
        }
    }
}

/// How a response was answered, as `x-cache` tells the client.
#[derive(Clone, Copy)]
pub(super) enum Served {
    Hit,
    Miss,
    Stale,
}

impl Served {
    pub(super) fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Served::Hit => "HIT",
            Served::Miss => "MISS",
            Served::Stale => "STALE",
        })
    }
}

impl Page {
    /// Whether this page may answer a request with these headers: same variant, and no
    /// `Authorization` unless the page was public.
    pub(super) fn answers(&self, headers: &HeaderMap, authorized: bool) -> bool {
        (self.public || !authorized)
            && self
                .vary
                .iter()
                .all(|(name, values)| vary_value(name, headers) == *values)
    }

    pub(super) fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stored_at).unwrap_or_default()
    }

    pub(super) fn is_fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.fresh_for
    }

    /// The response for this page, stamped; `304 Not Modified` when the request's
    /// `If-None-Match` names its `ETag`. `request` is the request's headers.
    pub(super) fn respond(&self, served: Served, request: &HeaderMap, now: SystemTime) -> Response {
        let age = self.age(now);
        let not_modified = request
            .get(IF_NONE_MATCH)
            .is_some_and(|condition| etag_matches(condition, &self.etag));
        let mut response = if not_modified {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            // RFC 9110 §15.4.5: the headers a 200 would carry that describe the
            // representation's caching, not its content.
            for name in [
                CACHE_CONTROL,
                EXPIRES,
                VARY,
                http::header::CONTENT_LOCATION,
                http::header::DATE,
                AGE,
                X_CACHE,
            ] {
                for value in self.headers.get_all(&name) {
                    response.headers_mut().append(name.clone(), value.clone());
                }
            }
            response.headers_mut().insert(ETAG, self.etag.clone());
            response
        } else {
            let mut response = Response::new(Body::from(self.body.clone()));
            *response.status_mut() = self.status;
            *response.headers_mut() = self.headers.clone();
            response
        };
        let headers = response.headers_mut();
        if self.stamp_max_age {
            let remaining = match served {
                Served::Stale => 0,
                // Whole seconds on both sides, so that `Age + max-age` is the lifetime.
                _ => self.fresh_for.as_secs().saturating_sub(age.as_secs()),
            };
            headers.insert(CACHE_CONTROL, max_age(remaining));
        }
        match served {
            Served::Miss => {
                headers.remove(AGE);
                headers.insert(X_CACHE, served.header());
            }
            Served::Hit => {
                headers.insert(AGE, HeaderValue::from(age.as_secs()));
            }
            Served::Stale => {
                headers.insert(AGE, HeaderValue::from(age.as_secs()));
                headers.insert(X_CACHE, served.header());
            }
        }
        response
    }
}

/// The headers of a hit (see `Page::headers`), built once when the page is stored.
pub(super) fn hit_headers(
    mut headers: HeaderMap,
    length: usize,
    stamp_max_age: bool,
    expires: Option<HeaderValue>,
) -> HeaderMap {
    headers.reserve(6);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(expires) = expires {
        headers.insert(EXPIRES, expires);
    }
    if stamp_max_age {
        headers.insert(CACHE_CONTROL, max_age(0));
    }
    headers.insert(AGE, HeaderValue::from_static("0"));
    headers.insert(X_CACHE, Served::Hit.header());
    headers
}

fn max_age(seconds: u64) -> HeaderValue {
    HeaderValue::try_from(format!("max-age={seconds}")).expect("digits are a valid header value")
}
