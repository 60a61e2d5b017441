//! Which requests share a page: the scheme splits them, ignored query parameters and
//! equivalent spellings of a varied header do not, and `route_keys` counts the distinct
//! keys of each route. Through `PageCacheLayer` and a `#[cache_page]` handler, driven by
//! `tower::ServiceExt::oneshot`.
#![deny(warnings, unused_qualifications)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{cache_page, PageCacheLayer, RouteKeys};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Counts how often the handler behind it ran.
#[derive(Clone, Default)]
struct Renders(Arc<AtomicUsize>);

impl Renders {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A router whose `/page` and `/books/{id}` handlers count their runs; a response
/// names the run that rendered it, so a shared page shows in its body.
fn router(layer: PageCacheLayer, vary_on_language: bool) -> (Router, Renders) {
    let renders = Renders::default();
    let handler = {
        let renders = renders.clone();
        move |headers: HeaderMap| {
            let run = renders.bump();
            let language = headers
                .get_all(header::ACCEPT_LANGUAGE)
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(" | ");
            async move {
                let mut response =
                    axum::response::Response::new(Body::from(format!("run {run} for {language}")));
                if vary_on_language {
                    response.headers_mut().insert(
                        header::VARY,
                        header::HeaderValue::from_static("accept-language"),
                    );
                }
                response
            }
        }
    };
    let router = Router::new()
        .route("/page", get(handler.clone()))
        .route("/books/{id}", get(handler))
        .layer(layer);
    (router, renders)
}

/// `x-cache` and the body.
async fn send(app: &Router, request: Request<Body>) -> (String, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (x_cache, String::from_utf8(body.to_vec()).unwrap())
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn with_headers(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn http_and_https_are_different_pages_and_invalidate_drops_both() {
    let layer = PageCacheLayer::new();
    let cache = layer.cache().clone();
    let (app, renders) = router(layer, false);
    let plain = || get_req("http://shop.example/page");
    let secure = || get_req("https://shop.example/page");
    // Behind a proxy that terminates TLS: the URI has no scheme, the proxy says which.
    let proxied = |proto: &str| {
        with_headers(
            "/page",
            &[("host", "shop.example"), ("x-forwarded-proto", proto)],
        )
    };
    let forwarded = || {
        with_headers(
            "/page",
            &[
                ("host", "shop.example"),
                ("forwarded", "for=192.0.2.1;proto=https"),
            ],
        )
    };

    assert_eq!(send(&app, plain()).await.0, "MISS");
    assert_eq!(send(&app, secure()).await.0, "MISS");
    assert_eq!(renders.count(), 2);
    assert_eq!(
        send(&app, plain()).await,
        ("HIT".into(), "run 1 for ".into())
    );
    assert_eq!(
        send(&app, secure()).await,
        ("HIT".into(), "run 2 for ".into())
    );
    assert_eq!(send(&app, proxied("https")).await.1, "run 2 for ");
    assert_eq!(send(&app, proxied("http")).await.1, "run 1 for ");
    assert_eq!(send(&app, forwarded()).await.1, "run 2 for ");
    // A made-up scheme reads as `http`: a client cannot multiply a page's entries.
    assert_eq!(send(&app, proxied("gopher")).await.1, "run 1 for ");
    assert_eq!(renders.count(), 2);

    // One invalidation, whichever scheme it names, drops the page under both.
    assert!(cache.invalidate("https://shop.example/page"));
    assert_eq!(send(&app, plain()).await.0, "MISS");
    assert_eq!(send(&app, proxied("https")).await.0, "MISS");
    assert_eq!(renders.count(), 4);
    assert!(cache.invalidate_async("http://shop.example/page").await);
    assert_eq!(send(&app, secure()).await.0, "MISS");
    assert_eq!(send(&app, plain()).await.0, "MISS");
    assert_eq!(renders.count(), 6);
    assert!(cache.invalidate("http://shop.example/page"));
    assert!(!cache.invalidate("http://shop.example/page"));
}

#[tokio::test]
async fn ignored_parameters_share_the_page_and_others_still_split_it() {
    let (app, renders) = router(
        PageCacheLayer::new().ignore_query(["utm_*", "fbclid"]),
        false,
    );
    assert_eq!(send(&app, get_req("/page?id=1")).await.0, "MISS");
    for shared in [
        "/page?utm_source=x&id=1",
        "/page?id=1&utm_medium=mail&utm_campaign=spring",
        "/page?fbclid=IwAR0abc&id=1",
        "/page?id=1&fbclid",
    ] {
        assert_eq!(
            send(&app, get_req(shared)).await,
            ("HIT".into(), "run 1 for ".into()),
            "{shared}"
        );
    }
    assert_eq!(renders.count(), 1);
    for split in [
        "/page?id=2&utm_source=x",
        "/page?id=1&ref=x",
        "/page?id=1&fbclid2=x",
        "/page",
    ] {
        assert_eq!(send(&app, get_req(split)).await.0, "MISS", "{split}");
    }
    assert_eq!(renders.count(), 5);
}

#[tokio::test]
async fn equivalent_accept_language_spellings_share_one_page() {
    // The `vary` option and a response's own `Vary` key the variant the same way.
    for (layer, response_varies) in [
        (PageCacheLayer::new().vary(["accept-language"]), false),
        (PageCacheLayer::new(), true),
    ] {
        let (app, renders) = router(layer, response_varies);
        let language = |values: &[&str]| {
            let headers: Vec<(&str, &str)> = values
                .iter()
                .map(|value| ("accept-language", *value))
                .collect();
            with_headers("/page", &headers)
        };
        assert_eq!(
            send(&app, language(&["en-GB,fr;q=0.5"])).await,
            ("MISS".into(), "run 1 for en-GB,fr;q=0.5".into())
        );
        for spelling in [
            &["EN-gb , fr ; q=0.5"][..],
            &["en-gb,  FR;q = 0.5"],
            &["en-GB", "fr;q=0.5"],
        ] {
            assert_eq!(
                send(&app, language(spelling)).await,
                ("HIT".into(), "run 1 for en-GB,fr;q=0.5".into()),
                "{spelling:?}"
            );
        }
        assert_eq!(renders.count(), 1);
        assert_eq!(send(&app, language(&["fr"])).await.0, "MISS");
        assert_eq!(send(&app, language(&["FR"])).await.0, "HIT");
        assert_eq!(send(&app, language(&["fr;q=0.5,en-GB"])).await.0, "MISS");
        assert_eq!(renders.count(), 3);
    }
}

fn distinct_keys(report: &[RouteKeys], route: &str) -> Option<u64> {
    report
        .iter()
        .find(|keys| keys.route == route)
        .map(|keys| keys.distinct_keys)
}

#[tokio::test]
async fn route_keys_counts_the_distinct_keys_of_each_matched_route() {
    let layer = PageCacheLayer::new();
    let cache = layer.cache().clone();
    let (app, renders) = router(layer, false);
    assert!(cache.route_keys().is_empty());
    const SEARCHES: u64 = 200;
    for round in 0..2 {
        for query in 0..SEARCHES {
            send(&app, get_req(&format!("/page?q={query}"))).await;
        }
        for _ in 0..20 {
            send(&app, get_req("/books/312")).await;
        }
        assert_eq!(renders.count() as u64, SEARCHES + 1, "round {round}");
    }
    // Two paths, one route: counted under the route axum matched.
    send(&app, get_req("/books/313")).await;
    let report = cache.route_keys();
    assert_eq!(report.len(), 2, "{report:?}");
    let searches = distinct_keys(&report, "/page").expect("/page is counted");
    assert!(searches.abs_diff(SEARCHES) <= 4, "{report:?}");
    assert_eq!(distinct_keys(&report, "/books/{id}"), Some(2), "{report:?}");
    // Most distinct keys first.
    assert_eq!(report[0].route, "/page");
}

#[tokio::test]
async fn route_keys_counts_a_variant_once_across_invalidations() {
    let layer = PageCacheLayer::new().vary(["accept-language"]);
    let cache = layer.cache().clone();
    let (app, _) = router(layer, false);
    for _ in 0..3 {
        for language in ["en", "fr", "de"] {
            send(
                &app,
                with_headers("/page", &[("accept-language", language)]),
            )
            .await;
        }
        assert!(cache.invalidate("/page"));
    }
    assert_eq!(distinct_keys(&cache.route_keys(), "/page"), Some(3));
}

#[cache_page(ignore_query = ["utm_*", "fbclid"], vary = ["Accept-Language"])]
async fn landing(headers: HeaderMap) -> String {
    let run = LANDING_RENDERS.fetch_add(1, Ordering::SeqCst) + 1;
    let language = headers
        .get(header::ACCEPT_LANGUAGE)
        .map_or("", |value| value.to_str().unwrap());
    format!("landing run {run} for {language}")
}

static LANDING_RENDERS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn a_handler_keys_pages_by_scheme_ignored_parameters_and_normalised_headers() {
    let app = Router::new().route("/landing", get(landing));
    let request = |uri: &str, language: &str| with_headers(uri, &[("accept-language", language)]);
    let first = send(&app, request("http://shop.example/landing?id=1", "en-GB")).await;
    assert_eq!(first, ("MISS".into(), "landing run 1 for en-GB".into()));
    for (uri, language) in [
        ("http://shop.example/landing?utm_source=x&id=1", "en-GB"),
        ("http://shop.example/landing?id=1&fbclid=abc", "EN-gb"),
        ("http://shop.example/landing?id=1", " en-gb "),
    ] {
        assert_eq!(
            send(&app, request(uri, language)).await,
            ("HIT".into(), "landing run 1 for en-GB".into()),
            "{uri} {language}"
        );
    }
    for (uri, language) in [
        ("https://shop.example/landing?id=1", "en-GB"),
        ("http://shop.example/landing?id=2&utm_source=x", "en-GB"),
        ("http://shop.example/landing?id=1", "fr"),
    ] {
        assert_eq!(
            send(&app, request(uri, language)).await.0,
            "MISS",
            "{uri} {language}"
        );
    }
    assert_eq!(LANDING_RENDERS.load(Ordering::SeqCst), 4);
    assert!(landing::invalidate("http://shop.example/landing?id=1"));
    for uri in [
        "http://shop.example/landing?id=1",
        "https://shop.example/landing?id=1",
    ] {
        assert_eq!(send(&app, request(uri, "en-GB")).await.0, "MISS", "{uri}");
    }
}
