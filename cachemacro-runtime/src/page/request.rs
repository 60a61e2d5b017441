//! The request head that `#[cache_page]` adds to a handler as a hidden extractor.

use std::convert::Infallible;
use std::future::Future;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::Request;

use super::cache::PageCache;

/// The method, URI and headers of the request a cached handler serves: what the page
/// cache needs to build the key and apply the rules. Extracted from the request parts
/// (so it never consumes the body) with any router state.
pub struct PageRequest(Request<()>, Option<MatchedPath>);

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut request = Request::new(());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        // The route, for the count of distinct keys per route; put in the request's
        // extensions only on a miss, which counts it (a first extension allocates).
        let route = parts.extensions.get::<MatchedPath>().cloned();
        Ok(PageRequest(request, route))
    }
}

/// What a `#[cache_page]` handler runs: the page cache in front of the handler's body.
pub async fn serve_handler<R, Fut>(cache: &PageCache, request: PageRequest, body: Fut) -> Response
where
    Fut: Future<Output = R>,
    R: IntoResponse,
{
    // After every extractor of the handler ran: they may be guards (a session, a
    // permission) that must turn a request away before any page answers it.
    let PageRequest(mut head, route) = request;
    if let Some(hit) = cache.answer_now(head.method(), head.uri(), head.headers()) {
        return hit;
    }
    if let Some(route) = route {
        head.extensions_mut().insert(route);
    }
    // Boxed, so that the handler's future (which axum moves a dozen times per
    // request) holds a pointer instead of the whole algorithm's state on every hit.
    let rendered = Box::pin(cache.serve_past_hit(head, |_request| async move {
        Ok::<_, Infallible>(body.await.into_response())
    }))
    .await;
    match rendered {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
