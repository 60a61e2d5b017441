//! Invalidation by unsafe methods (RFC 9111 §4.4): a 2xx or 3xx answer to any method but
//! GET, HEAD, OPTIONS and TRACE drops the request URI's page and those of `Location` and
//! `Content-Location` on the same host; a 4xx or 5xx drops nothing.

use super::harness::{each_way, Answer, App, Reply, Req, Seen, BOTH};

/// A site whose `GET`s are fresh for ten minutes and say which render they are; any
/// other method is answered by `unsafe_reply`.
fn site(
    unsafe_reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| match seen.method.as_str() {
        "GET" | "HEAD" => Reply::ok(format!("{} render {}", seen.target, seen.call))
            .header("cache-control", "max-age=600")
            .header("vary", "accept-language"),
        _ => unsafe_reply(seen),
    }
}

/// Gets `target` (from `host` when given) until it is a hit, so the test starts from a
/// stored page.
async fn store(app: &App, target: &str, host: Option<&str>) {
    let request = || match host {
        Some(host) => Req::get(target).header("host", host),
        None => Req::get(target),
    };
    app.send(request()).await;
    assert_eq!(
        app.send(request()).await.x_cache(),
        "HIT",
        "{target} is stored before the test"
    );
}

async fn x_cache(app: &App, target: &str) -> String {
    app.get(target).await.x_cache().to_owned()
}

#[tokio::test]
async fn post_invalidates_the_uri_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way.start(site(|_| Reply::ok("done"))).await;
        store(&app, "/other", None).await;
        for method in ["POST", "PUT", "DELETE", "PATCH", "FROBNICATE"] {
            store(&app, "/page", None).await;
            let answer: Answer = app.send(Req::new(method, "/page")).await;
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (200, "done"),
                "{method} reaches the inner service"
            );
            assert_eq!(
                x_cache(&app, "/page").await,
                "MISS",
                "{method} /page invalidates /page"
            );
        }
        assert_eq!(
            x_cache(&app, "/other").await,
            "HIT",
            "only the request URI is invalidated"
        );
    })
    .await;
}

#[tokio::test]
async fn the_request_uri_includes_its_query_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way.start(site(|_| Reply::ok("done"))).await;
        store(&app, "/page?id=1", None).await;
        store(&app, "/page?id=2", None).await;
        assert_eq!(app.send(Req::new("POST", "/page?id=1")).await.status, 200);
        assert_eq!(x_cache(&app, "/page?id=1").await, "MISS");
        assert_eq!(
            x_cache(&app, "/page?id=2").await,
            "HIT",
            "another query is another URI"
        );
    })
    .await;
}

#[tokio::test]
async fn location_and_content_location_on_the_same_host_are_invalidated_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(site(|seen: &Seen| {
                let host = seen.header("host").unwrap().to_owned();
                match seen.target.as_str() {
                    // `3` is a relative reference: /items/new resolves it to /items/3.
                    "/items/new" => Reply::status(201, "created")
                        .header("location", "3")
                        .header("content-location", format!("http://{host}/items/4")),
                    _ => Reply::status(303, "see other").header("location", "/items/5"),
                }
            }))
            .await;
        for target in ["/items/3", "/items/4", "/items/5", "/items/6"] {
            store(&app, target, None).await;
        }
        assert_eq!(app.send(Req::new("POST", "/items/new")).await.status, 201);
        assert_eq!(x_cache(&app, "/items/3").await, "MISS", "Location: 3");
        assert_eq!(
            x_cache(&app, "/items/4").await,
            "MISS",
            "an absolute Content-Location on the same host"
        );
        assert_eq!(x_cache(&app, "/items/5").await, "HIT");
        assert_eq!(
            app.send(Req::new("PUT", "/items/6")).await.status,
            303,
            "a 3xx"
        );
        assert_eq!(x_cache(&app, "/items/5").await, "MISS", "Location of a 303");
        assert_eq!(x_cache(&app, "/items/6").await, "MISS", "the request URI");
    })
    .await;
}

#[tokio::test]
async fn locations_on_another_host_are_not_invalidated_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(site(|_: &Seen| {
                Reply::status(201, "created")
                    .header("location", "http://elsewhere.example/items/3")
                    .header("content-location", "http://elsewhere.example/items/4")
            }))
            .await;
        for target in ["/items/3", "/items/4"] {
            store(&app, target, None).await;
            store(&app, target, Some("elsewhere.example")).await;
        }
        assert_eq!(app.send(Req::new("POST", "/items")).await.status, 201);
        for target in ["/items/3", "/items/4"] {
            assert_eq!(x_cache(&app, target).await, "HIT", "{target} of this host");
            let elsewhere = app
                .send(Req::get(target).header("host", "elsewhere.example"))
                .await;
            assert_eq!(
                elsewhere.x_cache(),
                "HIT",
                "{target} of the other host: not this request's origin"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn error_responses_invalidate_nothing_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(site(|seen: &Seen| {
                let status = seen.header("x-status").unwrap().parse().unwrap();
                Reply::status(status, "failed").header("location", "/items/3")
            }))
            .await;
        store(&app, "/page", None).await;
        store(&app, "/items/3", None).await;
        for status in ["400", "404", "409", "500", "503"] {
            let answer = app
                .send(Req::new("POST", "/page").header("x-status", status))
                .await;
            assert_eq!(answer.status.to_string(), status);
            assert_eq!(x_cache(&app, "/page").await, "HIT", "after a {status}");
            assert_eq!(
                x_cache(&app, "/items/3").await,
                "HIT",
                "Location of a {status}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn safe_methods_invalidate_nothing_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(site(|_: &Seen| {
                Reply::ok("options").header("location", "/items/3")
            }))
            .await;
        store(&app, "/page", None).await;
        store(&app, "/items/3", None).await;
        for method in ["OPTIONS", "TRACE"] {
            assert_eq!(app.send(Req::new(method, "/page")).await.status, 200);
            assert_eq!(x_cache(&app, "/page").await, "HIT", "after {method}");
            assert_eq!(x_cache(&app, "/items/3").await, "HIT", "after {method}");
        }
    })
    .await;
}

#[tokio::test]
async fn invalidation_drops_every_variant_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way.start(site(|_: &Seen| Reply::status(204, ""))).await;
        let variant = |language: &str| Req::get("/page").header("accept-language", language);
        for language in ["en", "fr"] {
            app.send(variant(language)).await;
            assert_eq!(app.send(variant(language)).await.x_cache(), "HIT");
        }
        assert_eq!(app.send(Req::new("DELETE", "/page")).await.status, 204);
        for language in ["en", "fr"] {
            assert_eq!(
                app.send(variant(language)).await.x_cache(),
                "MISS",
                "the {language} variant"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_unsafe_request_invalidates_the_page_under_both_schemes_rfc9111_4_4() {
    each_way(BOTH, |way| async move {
        let app = way.start(site(|_| Reply::ok("done"))).await;
        let https = || Req::get("/page").header("x-forwarded-proto", "https");
        app.send(https()).await;
        assert_eq!(
            app.send(https()).await.x_cache(),
            "HIT",
            "the https page is stored"
        );
        store(&app, "/page", None).await;
        // The form posts over http; the https copy of the page changed all the same.
        assert_eq!(app.send(Req::new("POST", "/page")).await.status, 200);
        assert_eq!(
            app.send(https()).await.x_cache(),
            "MISS",
            "https page dropped"
        );
        assert_eq!(x_cache(&app, "/page").await, "MISS", "http page dropped");
    })
    .await;
}
