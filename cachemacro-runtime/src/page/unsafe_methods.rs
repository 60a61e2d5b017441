//! Invalidation after unsafe methods (RFC 9111 §4.4): a `POST`, `PUT`, `DELETE`,
//! `PATCH` (or any method not known to be safe) that succeeds may have changed the page
//! at its URI, and at the URIs its response names in `Location` and `Content-Location`,
//! so the cache drops them before the client can ask for them again.

use std::future::Future;

use axum::response::Response;
use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderValue, Request};

use super::cache::PageCache;
use super::key::request_host;

impl PageCache {
    /// Passes an unsafe request to `render`; after a success (`2xx`, `3xx`) invalidates
    /// the pages it may have changed, before the response goes back to the client.
    pub(super) async fn serve_unsafe<B, F, Fut, E>(
        &self,
        request: Request<B>,
        render: F,
    ) -> Result<Response, E>
    where
        F: FnOnce(Request<B>) -> Fut,
        Fut: Future<Output = Result<Response, E>>,
    {
        let host = request_host(request.uri(), request.headers())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = request.uri().path().to_owned();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
        let response = render(request).await?;
        let status = response.status();
        if !(status.is_success() || status.is_redirection()) {
            return Ok(response);
        }
        let mut changed = vec![on_host(&host, &path_and_query)];
        for name in [LOCATION, CONTENT_LOCATION] {
            changed.extend(
                response
                    .headers()
                    .get_all(name)
                    .iter()
                    .filter_map(|value| same_host_reference(value, &host, &path)),
            );
        }
        for uri in changed {
            self.invalidate_async(&uri).await;
        }
        Ok(response)
    }
}

/// The URI of `path_and_query` on `host`, as `invalidate` takes it (no host: a request
/// that named none).
fn on_host(host: &str, path_and_query: &str) -> String {
    if host.is_empty() {
        path_and_query.to_owned()
    } else {
        format!("http://{host}{path_and_query}")
    }
}

/// The URI a `Location` or `Content-Location` value refers to, when it is on the
/// request's host (§4.4: a cache must not invalidate another host's pages on the word of
/// this one). Relative references are resolved against the request's path.
fn same_host_reference(value: &HeaderValue, host: &str, request_path: &str) -> Option<String> {
    let reference = value.to_str().ok()?.trim();
    let lower = reference.to_ascii_lowercase();
    let absolute = ["http://", "https://", "//"]
        .iter()
        .find_map(|scheme| lower.starts_with(scheme).then_some(scheme.len()));
    if let Some(skip) = absolute {
        let rest = &reference[skip..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if !authority.eq_ignore_ascii_case(host) || host.is_empty() {
            return None;
        }
        let path = if path.is_empty() { "/" } else { path };
        return Some(on_host(host, without_fragment(path)));
    }
    let reference = without_fragment(reference);
    if reference.is_empty() {
        return None;
    }
    if reference.starts_with('/') {
        return Some(on_host(host, reference));
    }
    // A relative path: beside the request's last segment.
    let directory = &request_path[..=request_path.rfind('/').unwrap_or(0)];
    let directory = if directory.is_empty() { "/" } else { directory };
    Some(on_host(host, &format!("{directory}{reference}")))
}

fn without_fragment(reference: &str) -> &str {
    reference.split('#').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(value: &'static str) -> Option<String> {
        same_host_reference(
            &HeaderValue::from_static(value),
            "shop.example",
            "/books/312/edit",
        )
    }

    #[test]
    fn references_on_the_same_host_are_resolved_and_others_refused() {
        assert_eq!(
            resolve("/books/312").as_deref(),
            Some("http://shop.example/books/312")
        );
        assert_eq!(
            resolve("https://Shop.Example/books?page=2#top").as_deref(),
            Some("http://shop.example/books?page=2")
        );
        assert_eq!(
            resolve("//shop.example").as_deref(),
            Some("http://shop.example/")
        );
        assert_eq!(
            resolve("reviews").as_deref(),
            Some("http://shop.example/books/312/reviews")
        );
        assert_eq!(resolve("https://evil.example/books/312"), None);
        assert_eq!(resolve("https://shop.example.evil/books/312"), None);
        assert_eq!(resolve("#top"), None);
    }

    #[test]
    fn without_a_host_only_paths_are_invalidated() {
        let value = HeaderValue::from_static("/books/1");
        assert_eq!(
            same_host_reference(&value, "", "/books").as_deref(),
            Some("/books/1")
        );
        let absolute = HeaderValue::from_static("http://shop.example/books/1");
        assert_eq!(same_host_reference(&absolute, "", "/books"), None);
    }
}
