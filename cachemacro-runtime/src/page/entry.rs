//! The value model of the page cache: what is stored under a [`PageKey`](super::PageKey) ([`CachedPage`]:
//! a rendered page or a variant index), and how a stored page answers a request (fresh,
//! stale, `304 Not Modified`, with the headers the cache stamps).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, ETAG, EXPIRES, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::freshness::{http_date_value, Freshness};
use super::key::vary_value;
use super::policy::has_validator;
use super::request_fields::RequestFields;
use super::seconds_header;
use super::validators::client_has_it;

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
    /// The response's own headers, as RFC 9111 stores them: the inner service's, without
    /// hop-by-hop fields, with the `Date` and the `Vary` names the cache adds. A `304`
    /// from a revalidation updates these.
    pub(super) stored: HeaderMap,
    /// The headers of a hit, ready to clone: `stored` with the `Content-Length`, `ETag`,
    /// `Expires`, `Cache-Control`, `Age` and `x-cache` the cache adds (the last three are
    /// rewritten per response). Cloning one map that already holds every name keeps the
    /// hit path at a single allocation for headers.
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// What a client's `If-None-Match` is compared with: the inner service's `ETag`, or
    /// the one the application's cache made.
    pub(super) etag: Option<HeaderValue>,
    pub(super) freshness: Freshness,
    /// May answer requests carrying `Authorization` (RFC 9111 §3.5).
    pub(super) public: bool,
    /// The application's mode: the cache stamps `Cache-Control: max-age` and `Expires`
    /// where the response has none. Kept for the wire form, which rebuilds `headers`.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(super) stamps: bool,
    /// `stamps`, and the response set no `Cache-Control`: the cache writes
    /// `max-age=<remaining>` on every answer.
    stamp_max_age: bool,
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
                .field("freshness", &page.freshness)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Served {
    Hit,
    Miss,
    Stale,
    /// A stale page the inner service confirmed with `304 Not Modified`.
    Revalidated,
}

impl Served {
    pub(super) fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Served::Hit => "HIT",
            Served::Miss => "MISS",
            Served::Stale => "STALE",
            Served::Revalidated => "REVALIDATED",
        })
    }
}

impl Page {
    /// A page from its stored parts; prepares the headers of a hit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        status: StatusCode,
        stored: HeaderMap,
        body: Bytes,
        etag: Option<HeaderValue>,
        freshness: Freshness,
        public: bool,
        stamps: bool,
        vary: Vec<(HeaderName, Vec<HeaderValue>)>,
    ) -> Page {
        let stamp_max_age = stamps && !stored.contains_key(CACHE_CONTROL);
        let mut headers = stored.clone();
        headers.reserve(6);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        if let Some(etag) = &etag {
            if !headers.contains_key(ETAG) {
                headers.insert(ETAG, etag.clone());
            }
        }
        if stamps && !headers.contains_key(EXPIRES) {
            let expires =
                freshness.response_time + freshness.lifetime.saturating_sub(freshness.initial_age);
            headers.insert(EXPIRES, http_date_value(expires));
        }
        if stamp_max_age {
            headers.insert(CACHE_CONTROL, seconds_header::max_age(0));
        }
        headers.insert(AGE, HeaderValue::from_static("0"));
        headers.insert(X_CACHE, Served::Hit.header());
        Page {
            status,
            stored,
            headers,
            body,
            etag,
            freshness,
            public,
            stamps,
            stamp_max_age,
            vary,
        }
    }

    /// Whether this page may answer a request with these headers: same variant, and no
    /// `Authorization` unless the page was public.
    pub(super) fn answers(&self, headers: &HeaderMap, authorized: bool) -> bool {
        (self.public || !authorized)
            && self
                .vary
                .iter()
                .all(|(name, values)| vary_value(name, headers) == *values)
    }

    /// Whether a stale copy can be revalidated: the inner service gave a validator.
    pub(super) fn can_revalidate(&self) -> bool {
        has_validator(&self.stored)
    }

    /// The response for this page, stamped; `304 Not Modified` when the request's
    /// conditions say the client holds it already; without a body for a `HEAD` (`head`).
    /// `request` is the request's headers.
    pub(super) fn respond(
        &self,
        served: Served,
        request: &HeaderMap,
        fields: RequestFields,
        age: Duration,
        head: bool,
    ) -> Response {
        let not_modified = fields.conditions()
            && client_has_it(request, self.etag.as_ref(), self.stored.get(LAST_MODIFIED));
        let mut response = if not_modified {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            // RFC 9110 §15.4.5: the headers a 200 would carry that describe the
            // representation's caching, not its content.
            for name in [
                CACHE_CONTROL,
                EXPIRES,
                VARY,
                ETAG,
                http::header::CONTENT_LOCATION,
                http::header::DATE,
                AGE,
                X_CACHE,
            ] {
                for value in self.headers.get_all(&name) {
                    response.headers_mut().append(name.clone(), value.clone());
                }
            }
            response
        } else {
            // A `HEAD` gets the `GET`'s fields, `Content-Length` included, and no body.
            let body = match head {
                true => Body::empty(),
                false => Body::from(self.body.clone()),
            };
            let mut response = Response::new(body);
            *response.status_mut() = self.status;
            *response.headers_mut() = self.headers.clone();
            response
        };
        let remaining = self.stamp_max_age.then(|| match served {
            Served::Stale => 0,
            // Whole seconds on both sides, so that `Age + max-age` is the lifetime.
            _ => self
                .freshness
                .lifetime
                .as_secs()
                .saturating_sub(age.as_secs()),
        });
        // A response the inner service sent just now keeps its own age, if it had one.
        let fresh_from_inner = served == Served::Miss && age.as_secs() == 0;
        // The prepared fields hold one `Age`, one `x-cache` and, when the cache stamps
        // it, one `Cache-Control`: one walk over the handful of fields sets them, where
        // an insert per field would hash its name and probe the map.
        for (name, value) in response.headers_mut().iter_mut() {
            if name == AGE {
                if !fresh_from_inner {
                    *value = seconds_header::age(age.as_secs());
                }
            } else if name == CACHE_CONTROL {
                if let Some(remaining) = remaining {
                    *value = seconds_header::max_age(remaining);
                }
            } else if name == X_CACHE && served != Served::Hit {
                *value = served.header();
            }
        }
        if fresh_from_inner {
            response.headers_mut().remove(AGE);
        }
        response
    }
}
