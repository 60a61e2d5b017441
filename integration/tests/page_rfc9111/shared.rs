//! What may be stored (RFC 9111 §3, §3.5, §4.2.2, §5.2.2): the rules of both modes, and
//! those of a shared cache only (`s-maxage`, `Authorization`, heuristic freshness, the
//! statuses stored, no headers of its own).

use std::time::SystemTime;

use super::harness::{
    each_way, imf_fixdate, shifted, Mode, Reply, Req, Seen, APPLICATION, BOTH, SHARED,
};
use super::revalidation::never_served_stale;

fn page_with(
    headers: &'static [(&'static str, &'static str)],
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        let mut reply = Reply::ok(format!("render {}", seen.call));
        for (name, value) in headers {
            reply = reply.header(name, *value);
        }
        reply
    }
}

#[tokio::test]
async fn s_maxage_wins_in_a_shared_cache_rfc9111_5_2_2_10() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(page_with(&[("cache-control", "max-age=0, s-maxage=600")]))
            .await;
        assert!(
            app.stores(Req::get("/page")).await,
            "s-maxage=600 over max-age=0"
        );
        let app = way
            .start(page_with(&[("cache-control", "max-age=600, s-maxage=0")]))
            .await;
        assert!(
            !app.stores(Req::get("/page")).await,
            "s-maxage=0 over max-age=600, no validator"
        );
        let app = way
            .start(page_with(&[
                ("cache-control", "max-age=600, s-maxage=60"),
                ("age", "100"),
            ]))
            .await;
        assert!(
            !app.stores(Req::get("/page")).await,
            "100 s old with s-maxage=60 is stale whatever max-age says"
        );
    })
    .await;
}

#[tokio::test]
async fn private_is_not_stored_rfc9111_5_2_2_7() {
    let cases: [&'static [(&'static str, &'static str)]; 2] = [
        &[("cache-control", "private, max-age=600")],
        // A field name argument: not storing at all is the safe reading.
        &[("cache-control", "private=\"x-user\", max-age=600")],
    ];
    each_way(BOTH, move |way| async move {
        for headers in cases {
            let app = way.start(page_with(headers)).await;
            assert!(!app.stores(Req::get("/page")).await, "{}", headers[0].1);
        }
    })
    .await;
}

#[tokio::test]
async fn no_store_set_cookie_and_vary_star_are_not_stored_rfc9111_3() {
    let cases: [(&str, &'static [(&'static str, &'static str)]); 3] = [
        ("no-store", &[("cache-control", "no-store, max-age=600")]),
        (
            "Set-Cookie",
            &[
                ("cache-control", "max-age=600"),
                ("set-cookie", "session=1"),
            ],
        ),
        (
            "Vary: *",
            &[("cache-control", "max-age=600"), ("vary", "*")],
        ),
    ];
    each_way(BOTH, move |way| async move {
        for (case, headers) in cases {
            let app = way.start(page_with(headers)).await;
            assert!(!app.stores(Req::get("/page")).await, "{case}");
        }
    })
    .await;
}

#[tokio::test]
async fn authorization_needs_public_s_maxage_or_must_revalidate_rfc9111_3_5() {
    let cases: [(&str, &'static [(&'static str, &'static str)]); 4] = [
        ("max-age=600", &[("cache-control", "max-age=600")]),
        ("public", &[("cache-control", "public, max-age=600")]),
        ("s-maxage", &[("cache-control", "s-maxage=600")]),
        (
            "must-revalidate",
            &[("cache-control", "max-age=600, must-revalidate")],
        ),
    ];
    each_way(BOTH, move |way| async move {
        for (case, headers) in cases {
            let app = way.start(page_with(headers)).await;
            let authorized = || Req::get("/page").header("authorization", "Bearer alice");
            let stored = app.stores(authorized()).await;
            let expected = match (case, way.mode) {
                ("max-age=600", _) => false,
                ("public" | "s-maxage", _) => true,
                // §3.5 lets a shared cache store it; the application's own cache keeps
                // to `public` and `s-maxage`.
                (_, Mode::Shared) => true,
                (_, Mode::Application) => false,
            };
            assert_eq!(stored, expected, "Authorization with {case}");
        }
    })
    .await;
}

/// A page dated now, last modified 100 000 s ago (a heuristic lifetime of 10 000 s),
/// `age` seconds old, with status `status` and no explicit freshness.
fn last_modified_page(
    status: u16,
    age: &'static str,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        Reply::status(status, format!("render {}", seen.call))
            .header("date", imf_fixdate(SystemTime::now()))
            .header("last-modified", imf_fixdate(shifted(-100_000)))
            .header("age", age)
    }
}

#[tokio::test]
async fn heuristic_freshness_is_a_tenth_of_last_modified_rfc9111_4_2_2() {
    each_way(SHARED, |way| async move {
        let app = way.start(last_modified_page(200, "9000")).await;
        assert!(
            app.stores(Req::get("/page")).await,
            "9 000 s old: within a tenth of 100 000 s"
        );
        let hit = app.get("/page").await;
        assert!(hit.age().unwrap() >= 9000);

        let app = way.start(last_modified_page(200, "11000")).await;
        app.get("/page").await;
        let again = app.get("/page").await;
        assert_ne!(again.x_cache(), "HIT", "11 000 s old: past a tenth");
        assert!(
            app.last_seen().header("if-modified-since").is_some(),
            "stale, and revalidated with its Last-Modified"
        );
    })
    .await;
}

#[tokio::test]
async fn heuristically_cacheable_statuses_rfc9111_4_2_2() {
    each_way(SHARED, |way| async move {
        for status in [200, 203, 300, 301, 308, 404, 405, 410, 414, 501] {
            let app = way.start(last_modified_page(status, "0")).await;
            assert!(
                app.stores(Req::get("/page")).await,
                "{status} is heuristically cacheable"
            );
        }
        for status in [201, 302, 307, 400, 403, 500, 503] {
            let app = way.start(last_modified_page(status, "0")).await;
            assert!(
                !app.stores(Req::get("/page")).await,
                "{status} needs explicit freshness"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn no_freshness_information_is_not_stored_in_a_shared_cache_rfc9111_4_2_2() {
    each_way(BOTH, |way| async move {
        let app = way.start(page_with(&[])).await;
        let stored = app.stores(Req::get("/page")).await;
        match way.mode {
            Mode::Shared => assert!(!stored, "no freshness, no Last-Modified: not stored"),
            Mode::Application => assert!(stored, "the application's cache uses its TTL"),
        }
    })
    .await;
}

#[tokio::test]
async fn explicit_freshness_stores_any_final_status_in_a_shared_cache_rfc9111_3() {
    each_way(BOTH, |way| async move {
        for status in [200, 201, 302, 403, 404, 500] {
            let app = way
                .start(move |seen: &Seen| {
                    Reply::status(status, format!("render {}", seen.call))
                        .header("cache-control", "max-age=600")
                })
                .await;
            let stored = app.stores(Req::get("/page")).await;
            let expected = way.mode == Mode::Shared || status == 200;
            assert_eq!(stored, expected, "{status} with max-age=600");
        }
    })
    .await;
}

#[tokio::test]
async fn partial_content_is_not_stored_rfc9111_3_4() {
    each_way(SHARED, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                Reply::status(206, format!("render {}", seen.call))
                    .header("cache-control", "max-age=600")
                    .header("content-range", "bytes 0-7/100")
            })
            .await;
        assert!(!app.stores(Req::get("/page")).await);
    })
    .await;
}

#[tokio::test]
async fn proxy_revalidate_rfc9111_5_2_2_8() {
    never_served_stale("proxy-revalidate").await;
}

#[tokio::test]
async fn shared_cache_adds_no_validators_or_freshness() {
    each_way(SHARED, |way| async move {
        let app = way
            .start(page_with(&[("cache-control", "max-age=600")]))
            .await;
        let miss = app.get("/page").await;
        let hit = app.get("/page").await;
        for (answer, what) in [(&miss, "miss"), (&hit, "hit")] {
            assert_eq!(
                answer.header("cache-control"),
                Some("max-age=600"),
                "{what}"
            );
            assert_eq!(answer.header("etag"), None, "{what}");
            assert_eq!(answer.header("expires"), None, "{what}");
        }
        assert_eq!(hit.x_cache(), "HIT");
        assert!(hit.age().is_some(), "Age on a hit");

        let app = way.start(last_modified_page(200, "0")).await;
        app.get("/page").await;
        let hit = app.get("/page").await;
        assert_eq!(hit.x_cache(), "HIT");
        assert_eq!(
            hit.header("cache-control"),
            None,
            "heuristic freshness is not written down"
        );
        assert_eq!(hit.header("expires"), None);
    })
    .await;
}

#[tokio::test]
async fn the_application_cache_adds_its_validator_and_freshness() {
    each_way(APPLICATION, |way| async move {
        let app = way.start(page_with(&[])).await;
        let miss = app.get("/page").await;
        let hit = app.get("/page").await;
        for (answer, what) in [(&miss, "miss"), (&hit, "hit")] {
            assert!(answer.header("etag").is_some(), "{what}");
            assert!(answer.header("expires").is_some(), "{what}");
            assert!(
                answer
                    .header("cache-control")
                    .is_some_and(|value| value.starts_with("max-age=")),
                "{what}"
            );
        }
    })
    .await;
}
