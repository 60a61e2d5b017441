//! The HTTP rules of the page cache, one test per rule, through
//! `PageCacheLayer` on an axum router driven by `tower::ServiceExt::oneshot`.
//! The same rules over a real socket are in `page_tcp.rs`; the macro in `page_macro.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cachemacro_runtime::{PageCache, PageCacheLayer};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, Barrier, Notify};
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

/// A router whose `/page` handler counts its runs and answers with `respond(run)`, and
/// with everything else the same: `GET` and `POST` on the same route.
fn router<R>(
    layer: PageCacheLayer,
    respond: impl Fn(usize, &HeaderMap) -> R + Clone + Send + Sync + 'static,
) -> (Router, Renders)
where
    R: IntoResponse,
{
    let renders = Renders::default();
    let handler = {
        let renders = renders.clone();
        move |headers: HeaderMap| {
            let run = renders.bump();
            let response = respond(run, &headers).into_response();
            async move { response }
        }
    };
    let router = Router::new()
        .route("/page", get(handler.clone()).post(handler.clone()))
        .route("/other", get(handler))
        .layer(layer);
    (router, renders)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn x_cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .map_or("", |value| value.to_str().unwrap())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn with_header(uri: &str, name: &'static str, value: &'static str) -> Request<Body> {
    Request::get(uri)
        .header(name, value)
        .body(Body::empty())
        .unwrap()
}

fn run_body(run: usize, _: &HeaderMap) -> String {
    format!("render {run}")
}

/// Two identical GETs: the second must be a hit for the response to count as stored.
async fn stored_after_two_gets(app: &Router, renders: &Renders, uri: &str) -> bool {
    let first = send(app, get_req(uri)).await;
    let again = send(app, get_req(uri)).await;
    assert!(
        first.text().starts_with("render 1"),
        "the first request renders"
    );
    match renders.count() {
        1 => {
            assert_eq!(again.x_cache(), "HIT");
            true
        }
        2 => false,
        other => panic!("{other} renders for two requests"),
    }
}

#[tokio::test]
async fn get_responses_are_stored_and_served() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    let first = send(&app, get_req("/page")).await;
    let again = send(&app, get_req("/page")).await;
    assert_eq!((first.x_cache(), again.x_cache()), ("MISS", "HIT"));
    assert_eq!(again.text(), "render 1");
    assert_eq!(renders.count(), 1);
}

#[tokio::test]
async fn other_methods_pass_through_untouched() {
    let (app, _) = router(PageCacheLayer::new(), run_body);
    for expected in 1..=2 {
        let request = Request::post("/page").body(Body::empty()).unwrap();
        let answer = send(&app, request).await;
        assert_eq!(answer.text(), format!("render {expected}"));
        assert!(!answer.headers.contains_key("x-cache"));
        assert!(!answer.headers.contains_key(header::ETAG));
    }
    // A POST neither reads nor fills the GET entry.
    assert_eq!(send(&app, get_req("/page")).await.x_cache(), "MISS");
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    send(&app, get_req("/page")).await;
    let head = send(&app, Request::head("/page").body(Body::empty()).unwrap()).await;
    assert_eq!(head.x_cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(head.headers[header::CONTENT_LENGTH], "8");
    assert_eq!(renders.count(), 1);
}

#[tokio::test]
async fn head_on_a_cold_page_fills_the_get_entry() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    let head = send(&app, Request::head("/page").body(Body::empty()).unwrap()).await;
    assert_eq!(head.x_cache(), "MISS");
    assert!(head.body.is_empty());
    let get = send(&app, get_req("/page")).await;
    assert_eq!((get.x_cache(), get.text().as_str()), ("HIT", "render 1"));
    assert_eq!(renders.count(), 1);
}

#[tokio::test]
async fn query_parameters_are_keyed_in_canonical_order() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    send(&app, get_req("/page?postcode=EC1&radius=5")).await;
    let reordered = send(&app, get_req("/page?radius=5&postcode=EC1")).await;
    assert_eq!(reordered.x_cache(), "HIT");
    assert_eq!(renders.count(), 1);
}

#[tokio::test]
async fn keys_are_injective() {
    // A Python view's `'{}{}'.format(postcode, radius)` key maps both to "EC115".
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    let one = send(&app, get_req("/page?postcode=EC1&radius=15")).await;
    let two = send(&app, get_req("/page?postcode=EC11&radius=5")).await;
    let three = send(&app, get_req("/page?postcode=EC115")).await;
    assert_eq!([one.x_cache(), two.x_cache(), three.x_cache()], ["MISS"; 3]);
    assert_eq!(renders.count(), 3);
}

#[tokio::test]
async fn path_and_host_are_part_of_the_key() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    send(&app, with_header("/page", "host", "a.example")).await;
    assert_eq!(
        send(&app, with_header("/page", "host", "b.example"))
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        send(&app, with_header("/other", "host", "a.example"))
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        send(&app, with_header("/page", "host", "A.example"))
            .await
            .x_cache(),
        "HIT"
    );
    assert_eq!(renders.count(), 3);
}

#[tokio::test]
async fn query_false_leaves_the_query_string_out() {
    let (app, renders) = router(PageCacheLayer::new().query(false), run_body);
    send(&app, get_req("/page?utm_source=mail")).await;
    assert_eq!(
        send(&app, get_req("/page?utm_source=feed")).await.x_cache(),
        "HIT"
    );
    assert_eq!(send(&app, get_req("/page")).await.x_cache(), "HIT");
    assert_eq!(renders.count(), 1);
}

#[tokio::test]
async fn the_response_vary_header_selects_a_variant() {
    let (app, renders) = router(PageCacheLayer::new(), |run, headers: &HeaderMap| {
        let language = headers
            .get(header::ACCEPT_LANGUAGE)
            .map_or("none", |value| value.to_str().unwrap())
            .to_owned();
        (
            [(header::VARY, "Accept-Language")],
            format!("{language} {run}"),
        )
    });
    let english = send(&app, with_header("/page", "accept-language", "en")).await;
    let french = send(&app, with_header("/page", "accept-language", "fr")).await;
    let english_again = send(&app, with_header("/page", "accept-language", "en")).await;
    let french_again = send(&app, with_header("/page", "accept-language", "fr")).await;
    assert_eq!(
        (english.text().as_str(), english.x_cache()),
        ("en 1", "MISS")
    );
    assert_eq!((french.text().as_str(), french.x_cache()), ("fr 2", "MISS"));
    assert_eq!(
        (english_again.text().as_str(), english_again.x_cache()),
        ("en 1", "HIT")
    );
    assert_eq!(
        (french_again.text().as_str(), french_again.x_cache()),
        ("fr 2", "HIT")
    );
    assert_eq!(renders.count(), 2);
}

#[tokio::test]
async fn the_vary_option_selects_a_variant() {
    let (app, renders) = router(PageCacheLayer::new().vary(["X-Tenant"]), run_body);
    let a = send(&app, with_header("/page", "x-tenant", "a")).await;
    let b = send(&app, with_header("/page", "x-tenant", "b")).await;
    let a_again = send(&app, with_header("/page", "x-tenant", "a")).await;
    assert_eq!(
        [a.x_cache(), b.x_cache(), a_again.x_cache()],
        ["MISS", "MISS", "HIT"]
    );
    assert_eq!(a_again.text(), "render 1");
    assert_eq!(
        a.headers[header::VARY],
        "x-tenant",
        "downstream caches are told too"
    );
    assert_eq!(renders.count(), 2);
}

#[tokio::test]
async fn only_status_200_is_stored_by_default() {
    let (app, renders) = router(PageCacheLayer::new(), |run, _: &HeaderMap| {
        (StatusCode::NOT_FOUND, format!("{run}"))
    });
    assert!(!stored_after_two_gets_status(&app, &renders).await);
}

async fn stored_after_two_gets_status(app: &Router, renders: &Renders) -> bool {
    send(app, get_req("/page")).await;
    let again = send(app, get_req("/page")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    renders.count() == 1
}

#[tokio::test]
async fn the_stored_statuses_are_configurable() {
    let layer = PageCacheLayer::new().statuses([StatusCode::OK, StatusCode::NOT_FOUND]);
    let (app, renders) = router(layer, |run, _: &HeaderMap| {
        (StatusCode::NOT_FOUND, format!("{run}"))
    });
    assert!(stored_after_two_gets_status(&app, &renders).await);
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_not_stored() {
    let (app, renders) = router(PageCacheLayer::new().max_body(8), |run, _: &HeaderMap| {
        format!("render {run}!")
    });
    assert!(
        !stored_after_two_gets(&app, &renders, "/page").await,
        "one byte over the limit"
    );
    let (app, renders) = router(PageCacheLayer::new().max_body(8), run_body);
    assert!(
        stored_after_two_gets(&app, &renders, "/page").await,
        "exactly at the limit is stored"
    );
}

#[tokio::test]
async fn streaming_bodies_are_not_stored() {
    let (app, renders) = router(PageCacheLayer::new(), |run, _: &HeaderMap| {
        let chunks = vec![Ok::<_, Infallible>(format!("render {run}"))];
        Body::from_stream(futures_util::stream::iter(chunks))
    });
    assert!(!stored_after_two_gets(&app, &renders, "/page").await);
}

#[tokio::test]
async fn responses_setting_a_cookie_are_not_stored() {
    let (app, renders) = router(PageCacheLayer::new(), |run, _: &HeaderMap| {
        ([(header::SET_COOKIE, "session=1")], format!("render {run}"))
    });
    assert!(!stored_after_two_gets(&app, &renders, "/page").await);
}

async fn stored_with_cache_control(value: &'static str) -> bool {
    let (app, renders) = router(PageCacheLayer::new(), move |run, _: &HeaderMap| {
        ([(header::CACHE_CONTROL, value)], format!("render {run}"))
    });
    stored_after_two_gets(&app, &renders, "/page").await
}

#[tokio::test]
async fn cache_control_private_is_not_stored() {
    assert!(!stored_with_cache_control("private, max-age=60").await);
}

#[tokio::test]
async fn cache_control_no_store_is_not_stored() {
    assert!(!stored_with_cache_control("no-store").await);
}

#[tokio::test]
async fn cache_control_no_cache_is_not_stored() {
    assert!(!stored_with_cache_control("no-cache").await);
}

#[tokio::test]
async fn vary_star_is_not_stored() {
    let (app, renders) = router(PageCacheLayer::new(), |run, _: &HeaderMap| {
        ([(header::VARY, "*")], format!("render {run}"))
    });
    assert!(!stored_after_two_gets(&app, &renders, "/page").await);
}

#[tokio::test]
async fn responses_to_authorized_requests_are_not_stored() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    for _ in 0..2 {
        let answer = send(&app, with_header("/page", "authorization", "Bearer alice")).await;
        assert_eq!(answer.x_cache(), "MISS");
    }
    assert_eq!(renders.count(), 2);
    // Nor does an authorized request get a page stored for anonymous ones.
    send(&app, get_req("/page")).await;
    assert_eq!(send(&app, get_req("/page")).await.x_cache(), "HIT");
    let authorized = send(&app, with_header("/page", "authorization", "Bearer alice")).await;
    assert_eq!(authorized.x_cache(), "MISS");
    assert_eq!(renders.count(), 4);
}

#[tokio::test]
async fn authorized_responses_saying_public_or_s_maxage_are_stored() {
    for cache_control in ["public", "s-maxage=60"] {
        let (app, renders) = router(PageCacheLayer::new(), move |run, _: &HeaderMap| {
            (
                [(header::CACHE_CONTROL, cache_control)],
                format!("render {run}"),
            )
        });
        send(&app, with_header("/page", "authorization", "Bearer alice")).await;
        let again = send(&app, with_header("/page", "authorization", "Bearer bob")).await;
        assert_eq!(again.x_cache(), "HIT", "{cache_control}");
        assert_eq!(renders.count(), 1);
    }
}

#[tokio::test]
async fn responses_are_stamped_with_freshness_validator_and_age() {
    let (app, _) = router(
        PageCacheLayer::new().ttl(Duration::from_secs(900)),
        run_body,
    );
    let miss = send(&app, get_req("/page")).await;
    assert_eq!(miss.headers[header::CACHE_CONTROL], "max-age=900");
    assert!(httpdate::parse_http_date(miss.headers[header::EXPIRES].to_str().unwrap()).is_ok());
    let etag = miss.headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong ETag: {etag}"
    );
    assert!(!miss.headers.contains_key(header::AGE));

    let hit = send(&app, get_req("/page")).await;
    assert_eq!(hit.headers[header::ETAG], etag.as_str());
    assert_eq!(hit.headers[header::EXPIRES], miss.headers[header::EXPIRES]);
    let age: u64 = hit.headers[header::AGE].to_str().unwrap().parse().unwrap();
    let max_age: u64 = hit.headers[header::CACHE_CONTROL].to_str().unwrap()["max-age=".len()..]
        .parse()
        .unwrap();
    assert_eq!(age + max_age, 900, "max-age counts down what remains");
}

#[tokio::test]
async fn the_handlers_own_cache_headers_are_kept_and_honoured() {
    let (app, _) = router(PageCacheLayer::new(), |run, _: &HeaderMap| {
        (
            [
                (header::CACHE_CONTROL, "public, max-age=60"),
                (header::EXPIRES, "Thu, 01 Jan 2099 00:00:00 GMT"),
                (header::ETAG, "\"v1\""),
            ],
            format!("render {run}"),
        )
    });
    for expected in ["MISS", "HIT"] {
        let answer = send(&app, get_req("/page")).await;
        assert_eq!(answer.x_cache(), expected);
        assert_eq!(answer.headers[header::CACHE_CONTROL], "public, max-age=60");
        assert_eq!(
            answer.headers[header::EXPIRES],
            "Thu, 01 Jan 2099 00:00:00 GMT"
        );
        assert_eq!(answer.headers[header::ETAG], "\"v1\"");
    }
}

#[tokio::test]
async fn if_none_match_with_the_etag_answers_304_without_a_body() {
    let (app, renders) = router(PageCacheLayer::new(), run_body);
    let first = send(&app, get_req("/page")).await;
    let etag = first.headers[header::ETAG].clone();
    let request = Request::get("/page")
        .header(header::IF_NONE_MATCH, etag.clone())
        .body(Body::empty())
        .unwrap();
    let revalidated = send(&app, request).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.headers[header::ETAG], etag);
    assert_eq!(revalidated.x_cache(), "HIT");

    let stale_validator = Request::get("/page")
        .header(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"something-else\""),
        )
        .body(Body::empty())
        .unwrap();
    let full = send(&app, stale_validator).await;
    assert_eq!(
        (full.status, full.text().as_str()),
        (StatusCode::OK, "render 1")
    );
    assert_eq!(renders.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_a_cold_page_render_it_once() {
    const REQUESTS: usize = 100;
    let gate = Arc::new(Notify::new());
    let renders = Renders::default();
    let handler = {
        let (gate, renders) = (Arc::clone(&gate), renders.clone());
        move || {
            let (gate, renders) = (Arc::clone(&gate), renders.clone());
            async move {
                let run = renders.bump();
                gate.notified().await;
                format!("render {run}")
            }
        }
    };
    let app = Router::new()
        .route("/page", get(handler))
        .layer(PageCacheLayer::new());
    let barrier = Arc::new(Barrier::new(REQUESTS + 1));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (app, barrier) = (app.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                send(&app, get_req("/page")).await
            })
        })
        .collect();
    barrier.wait().await;
    // Open the gate only once the leader is inside the handler, then keep it open.
    while renders.count() == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..REQUESTS {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    gate.notify_one();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.text(), "render 1");
    }
    assert_eq!(renders.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_page_is_served_stale_while_one_request_renders_it() {
    // A short TTL with a long stale window: after the sleep the page is surely expired
    // and surely still within the window, however slow the machine.
    let layer = PageCacheLayer::new()
        .ttl(Duration::from_millis(200))
        .stale(Duration::from_secs(3600));
    let gate = Arc::new(Notify::new());
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let renders = Renders::default();
    let handler = {
        let (gate, renders) = (Arc::clone(&gate), renders.clone());
        move || {
            let (gate, renders, entered) = (Arc::clone(&gate), renders.clone(), entered.clone());
            async move {
                let run = renders.bump();
                if run > 1 {
                    entered.send(()).unwrap();
                    gate.notified().await;
                }
                format!("render {run}")
            }
        }
    };
    let app = Router::new().route("/page", get(handler)).layer(layer);
    assert_eq!(send(&app, get_req("/page")).await.x_cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(600)).await;

    let rerender = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get_req("/page")).await }
    });
    entered_rx.recv().await.unwrap();
    // The re-render is in progress and blocked: others get the stale page at once.
    for _ in 0..3 {
        let stale = send(&app, get_req("/page")).await;
        assert_eq!(
            (stale.x_cache(), stale.text().as_str()),
            ("STALE", "render 1")
        );
        assert_eq!(stale.headers[header::CACHE_CONTROL], "max-age=0");
    }
    gate.notify_one();
    let fresh = rerender.await.unwrap();
    assert_eq!(
        (fresh.x_cache(), fresh.text().as_str()),
        ("MISS", "render 2")
    );
    let hit = send(&app, get_req("/page")).await;
    assert_eq!((hit.x_cache(), hit.text().as_str()), ("HIT", "render 2"));
    assert_eq!(renders.count(), 2);
}

#[tokio::test]
async fn without_a_stale_window_an_expired_page_is_rendered_again() {
    let layer = PageCacheLayer::new().ttl(Duration::from_millis(200));
    let (app, renders) = router(layer, run_body);
    send(&app, get_req("/page")).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = send(&app, get_req("/page")).await;
    assert_eq!(
        (again.x_cache(), again.text().as_str()),
        ("MISS", "render 2")
    );
    assert_eq!(renders.count(), 2);
}

#[tokio::test]
async fn invalidate_removes_one_page_and_clear_removes_all() {
    let cache = PageCache::new();
    let (app, renders) = router(PageCacheLayer::from(cache.clone()), run_body);
    send(&app, with_header("/page", "host", "shop.example")).await;
    send(&app, with_header("/other", "host", "shop.example")).await;
    assert!(cache.invalidate("http://shop.example/page"));
    assert!(
        !cache.invalidate("http://shop.example/page"),
        "already gone"
    );
    assert_eq!(
        send(&app, with_header("/page", "host", "shop.example"))
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        send(&app, with_header("/other", "host", "shop.example"))
            .await
            .x_cache(),
        "HIT"
    );
    cache.clear();
    assert_eq!(
        send(&app, with_header("/other", "host", "shop.example"))
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(renders.count(), 4);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 4));
}

#[tokio::test]
async fn invalidating_a_varying_page_drops_every_variant() {
    let cache = PageCache::new().vary(["accept-language"]);
    let (app, renders) = router(PageCacheLayer::from(cache.clone()), run_body);
    for language in ["en", "fr"] {
        let request = Request::get("/page")
            .header("accept-language", language)
            .body(Body::empty())
            .unwrap();
        send(&app, request).await;
    }
    assert!(cache.invalidate("/page"));
    for language in ["en", "fr"] {
        let request = Request::get("/page")
            .header("accept-language", language)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, request).await.x_cache(), "MISS", "{language}");
    }
    assert_eq!(renders.count(), 4);
}

#[tokio::test]
async fn a_method_the_router_rejects_is_not_cached_either() {
    let (app, _) = router(PageCacheLayer::new(), run_body);
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/page")
        .body(Body::empty())
        .unwrap();
    let answer = send(&app, request).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!answer.headers.contains_key("x-cache"));
}

#[tokio::test]
async fn uncacheable_responses_are_not_serialised_behind_one_another() {
    // A leader whose response cannot be stored tells its followers so; they render in
    // parallel instead of queueing one flight after another.
    let renders = Renders::default();
    let gate = Arc::new(Notify::new());
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let handler = {
        let (renders, gate) = (renders.clone(), Arc::clone(&gate));
        move || {
            let (renders, gate, entered) = (renders.clone(), Arc::clone(&gate), entered.clone());
            async move {
                let run = renders.bump();
                entered.send(run).unwrap();
                if run == 1 {
                    gate.notified().await;
                }
                Response::builder()
                    .header(header::CACHE_CONTROL, "no-store")
                    .body(Body::from(format!("render {run}")))
                    .unwrap()
            }
        }
    };
    let app = Router::new()
        .route("/page", get(handler))
        .layer(PageCacheLayer::new());
    let leader = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get_req("/page")).await }
    });
    assert_eq!(entered_rx.recv().await, Some(1));
    // While the leader is blocked, a second request must wait for it (single-flight)...
    let follower = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get_req("/page")).await }
    });
    gate.notify_one();
    // ...and then render for itself, since the leader's page was not shareable.
    assert_eq!(leader.await.unwrap().text(), "render 1");
    assert_eq!(follower.await.unwrap().text(), "render 2");
    assert_eq!(renders.count(), 2);
}
