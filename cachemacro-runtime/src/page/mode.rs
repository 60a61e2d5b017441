//! [`PageCacheMode`]: whether the page cache is the application's own cache (the
//! default) or an RFC 9111 shared cache in front of an upstream.

/// Which rules of RFC 9111 the page cache applies to responses that say little about
/// their own caching.
///
/// An application's cache sits inside the origin: the handlers are the application's
/// own, and a page without freshness information is cached for the configured TTL,
/// as Django's cache middleware does. A shared cache sits in front of someone else's
/// upstream, as a reverse proxy does: it stores only what the upstream allows, for as
/// long as the upstream says.
///
/// | | [`Application`](PageCacheMode::Application) (default) | [`Shared`](PageCacheMode::Shared) |
/// |---|---|---|
/// | No `max-age`, `s-maxage` or `Expires` | stored for the TTL (default 10 minutes) | heuristic freshness: 10 % of the age of `Last-Modified`, for heuristically cacheable statuses only; otherwise not stored |
/// | Statuses stored | `200` (configurable) | any final status with explicit freshness, except `206` and `304` |
/// | Headers the cache adds | `Cache-Control: max-age`, `Expires`, a strong `ETag` when the handler set none; `Age`; `x-cache` | `Age` and `x-cache` only: the upstream's headers are forwarded as they are |
/// | `Authorization` on the request | stored only with `public` or `s-maxage` | stored only with `public`, `s-maxage` or `must-revalidate` (§3.5) |
/// | `s-maxage` over `max-age`, `proxy-revalidate` | yes | yes |
/// | `private`, `no-store`, `Set-Cookie`, `Vary: *` | not stored | not stored |
/// | `no-cache` on the response | stored, revalidated on every request | stored, revalidated on every request |
/// | `Expires`, `Date`, `Age` of the response | honoured (§4.2) | honoured (§4.2) |
/// | Unsafe methods (`POST`, `PUT`, ...) | invalidate the URI, `Location` and `Content-Location` (§4.4) | the same |
/// | Request `max-stale`, `min-fresh`, `only-if-cached`, `no-store` | honoured | honoured |
/// | Request `no-cache`, `max-age`, `Pragma: no-cache` | ignored unless [`honour_request_no_cache`](super::PageCache::honour_request_no_cache) | the same |
///
/// ```
/// use cachemacro_runtime::{PageCache, PageCacheMode};
///
/// let proxy = PageCache::new().mode(PageCacheMode::Shared);
/// assert_eq!(proxy.current_mode(), PageCache::shared().current_mode());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageCacheMode {
    /// The application's own cache: responses without freshness information are stored
    /// for the configured TTL.
    #[default]
    Application,
    /// An RFC 9111 shared cache: only what the upstream's headers allow is stored.
    Shared,
}
