//! The request head that `#[cache_page]` adds to a handler as a hidden extractor.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::Request;

use super::cache::PageCache;

/// The page cache of one `#[cache_page]` handler, named by a type so that the handler's
/// hidden extractor can reach it: an extractor is built by axum from the request alone.
///
/// The macro implements it for a marker type in the handler's companion module; code
/// that serves pages by hand uses [`PageCacheLayer`](crate::PageCacheLayer) instead.
///
/// ```
/// use std::sync::OnceLock;
/// use cachemacro_runtime::__private::{HandlerPageCache, PageCache};
///
/// struct BookPages;
///
/// impl HandlerPageCache for BookPages {
///     fn page_cache() -> &'static PageCache {
///         static PAGES: OnceLock<PageCache> = OnceLock::new();
///         PAGES.get_or_init(PageCache::new)
///     }
/// }
/// assert!(std::ptr::eq(BookPages::page_cache(), BookPages::page_cache()));
/// ```
pub trait HandlerPageCache: 'static {
    /// The handler's cache, the same one on every call.
    fn page_cache() -> &'static PageCache;
}

/// What the page cache made of a cached handler's request, extracted from the request
/// parts (so it never consumes the body) with any router state.
///
/// The stored page is looked up here, on the borrowed parts, before the handler's own
/// extractors run; it is only *served* after them (in [`serve_handler`]), since they may
/// be guards (a session, a permission) that must turn a request away before any page
/// answers it. A hit thus costs no copy of the request head; a miss keeps one for the
/// rendering.
pub struct PageRequest<H> {
    answer: Answer,
    handler: PhantomData<fn() -> H>,
}

enum Answer {
    /// The stored page's response, counted as a hit only when served.
    Hit(Response),
    /// The head to render with, and the route for the count of distinct keys per route;
    /// boxed, so that the handler's future (which axum moves several times per request)
    /// is as small on a hit as a response.
    Miss(Box<(Request<()>, Option<MatchedPath>)>),
}

impl<S: Send + Sync, H: HandlerPageCache> FromRequestParts<S> for PageRequest<H> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let cache = H::page_cache();
        let answer = match cache.answer_uncounted(&parts.method, &parts.uri, &parts.headers) {
            Some(hit) => Answer::Hit(hit),
            None => {
                let mut head = Request::new(());
                *head.method_mut() = parts.method.clone();
                *head.uri_mut() = parts.uri.clone();
                *head.version_mut() = parts.version;
                *head.headers_mut() = parts.headers.clone();
                // Put in the head's extensions only when rendering, which counts it (a
                // first extension allocates).
                let route = parts.extensions.get::<MatchedPath>().cloned();
                Answer::Miss(Box::new((head, route)))
            }
        };
        Ok(PageRequest {
            answer,
            handler: PhantomData,
        })
    }
}

/// What a `#[cache_page]` handler runs once every extractor let the request through: the
/// page found for it, or the page cache in front of the handler's body.
///
/// The body comes as a function that starts it, called only on a miss: a handler's
/// future holds every state it may reach (a database call's buffers, a template's), and
/// a hit should not carry one that never runs.
pub async fn serve_handler<H, R, F, Fut>(request: PageRequest<H>, render: F) -> Response
where
    H: HandlerPageCache,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
    R: IntoResponse,
{
    let cache = H::page_cache();
    let (mut head, route) = match request.answer {
        Answer::Hit(hit) => {
            cache.count_hit();
            return hit;
        }
        Answer::Miss(miss) => *miss,
    };
    if let Some(route) = route {
        head.extensions_mut().insert(route);
    }
    // Boxed, so that the handler's future (which axum moves a dozen times per
    // request) holds a pointer instead of the whole algorithm's state on every hit.
    let rendered = Box::pin(cache.serve_past_hit(head, |_request| async move {
        Ok::<_, Infallible>(render().await.into_response())
    }))
    .await;
    match rendered {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
