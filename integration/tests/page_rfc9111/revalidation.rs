//! Revalidation (RFC 9111 §4.3, §5.2.2.2, §5.2.2.4): a stale or `no-cache` page with a
//! validator is checked upstream with a conditional request; a `304` refreshes it
//! without a render; `must-revalidate` is never served stale.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

use super::harness::{aged, each_way, validated_page, Reply, Req, Seen, BOTH};

#[tokio::test]
async fn stale_page_is_revalidated_rfc9111_4_3_1() {
    each_way(BOTH, |way| async move {
        // The inner service ignores the conditional and renders again: a new 200 is
        // handled like a miss.
        let validators = [
            ("etag", "\"v1\"", "if-none-match"),
            (
                "last-modified",
                "Tue, 01 Sep 2026 10:00:00 GMT",
                "if-modified-since",
            ),
        ];
        for (validator, value, conditional) in validators {
            let app = way
                .start(move |seen: &Seen| {
                    Reply::ok(format!("render {}", seen.call))
                        .header("cache-control", "max-age=60")
                        .header("age", "60")
                        .header(validator, value)
                })
                .await;
            assert_eq!(app.get("/page").await.x_cache(), "MISS");
            assert_eq!(
                app.seen()[0].header(conditional),
                None,
                "nothing to revalidate yet"
            );
            let again = app.get("/page").await;
            assert_eq!(
                app.last_seen().header(conditional),
                Some(value),
                "a stale page with {validator} is revalidated with {conditional}"
            );
            assert_eq!(
                (again.x_cache(), again.body.as_str()),
                ("MISS", "render 2"),
                "a 200 to a conditional request replaces the page"
            );
            assert_eq!(app.renders(), 2);
        }

        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call))
                    .header("cache-control", "max-age=0")
                    .header("etag", "\"v1\"")
                    .header("last-modified", "Tue, 01 Sep 2026 10:00:00 GMT")
            })
            .await;
        app.get("/page").await;
        app.get("/page").await;
        let seen = app.last_seen();
        assert_eq!(
            (
                seen.header("if-none-match"),
                seen.header("if-modified-since")
            ),
            (Some("\"v1\""), Some("Tue, 01 Sep 2026 10:00:00 GMT")),
            "both validators are sent"
        );
    })
    .await;
}

#[tokio::test]
async fn not_modified_refreshes_the_page_rfc9111_4_3_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                if seen.header("if-none-match") == Some("\"v1\"") {
                    Reply::not_modified()
                        .header("etag", "\"v1\"")
                        .header("cache-control", "max-age=600")
                        .header("x-version", "2")
                } else {
                    Reply::ok(format!("render {}", seen.call))
                        .header("etag", "\"v1\"")
                        .header("cache-control", "max-age=0")
                        .header("x-version", "1")
                        .header("x-kept", "yes")
                }
            })
            .await;
        let miss = app.get("/page").await;
        assert_eq!(
            (miss.x_cache(), miss.header("x-version")),
            ("MISS", Some("1"))
        );

        let revalidated = app.get("/page").await;
        assert_eq!(
            (revalidated.status, revalidated.x_cache()),
            (200, "REVALIDATED")
        );
        assert_eq!(revalidated.body, "render 1", "the stored body");
        assert_eq!(
            revalidated.header("x-version"),
            Some("2"),
            "the 304's headers update the stored ones"
        );
        assert_eq!(revalidated.header("x-kept"), Some("yes"));
        assert_eq!(
            (app.renders(), app.not_modified()),
            (1, 1),
            "answered 304, no render"
        );
        let stats = app.stats();
        assert_eq!(
            (stats.misses, stats.revalidated),
            (2, 1),
            "the revalidation is a miss the 304 settled"
        );

        let hit = app.get("/page").await;
        assert_eq!(
            (hit.x_cache(), hit.body.as_str(), hit.header("x-version")),
            ("HIT", "render 1", Some("2")),
            "max-age=600 from the 304: fresh again"
        );
        assert_eq!(hit.header("cache-control"), Some("max-age=600"));
        assert_eq!(app.seen().len(), 2, "the hit did not go upstream");
    })
    .await;
}

#[tokio::test]
async fn client_conditionals_are_answered_by_the_cache_rfc9111_4_3_2() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(validated_page("max-age=0", "\"v1\"", "max-age=0"))
            .await;
        app.get("/page").await;

        let matching = app
            .send(Req::get("/page").header("if-none-match", "\"v1\""))
            .await;
        assert_eq!(
            (matching.status, matching.body.as_str()),
            (304, ""),
            "the client's own validator matches"
        );
        let other = app
            .send(Req::get("/page").header("if-none-match", "\"v0\""))
            .await;
        assert_eq!(
            (other.status, other.body.as_str(), other.x_cache()),
            (200, "render 1", "REVALIDATED")
        );
        assert_eq!(
            app.last_seen().header("if-none-match"),
            Some("\"v1\""),
            "the cache's validator goes upstream, not the client's"
        );
        let since = app
            .send(Req::get("/page").header("if-modified-since", "Tue, 01 Sep 2026 10:00:00 GMT"))
            .await;
        assert_eq!(since.status, 200);
        assert_eq!(
            app.last_seen().header("if-modified-since"),
            None,
            "the client's If-Modified-Since is not forwarded"
        );
        assert_eq!((app.renders(), app.not_modified()), (1, 3));
    })
    .await;
}

#[tokio::test]
async fn no_cache_response_is_revalidated_every_time_rfc9111_5_2_2_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(validated_page(
                "no-cache, max-age=600",
                "\"v1\"",
                "no-cache, max-age=600",
            ))
            .await;
        assert_eq!(app.get("/page").await.x_cache(), "MISS");
        for round in 1..=3 {
            let again = app.get("/page").await;
            assert_eq!(
                (again.x_cache(), again.body.as_str()),
                ("REVALIDATED", "render 1"),
                "no-cache: revalidated although fresh, round {round}"
            );
        }
        assert_eq!((app.renders(), app.not_modified()), (1, 3));

        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call)).header("cache-control", "no-cache")
            })
            .await;
        assert!(
            !app.stores(Req::get("/page")).await,
            "no-cache without a validator of its own is not stored"
        );
        assert_eq!(app.last_seen().header("if-none-match"), None);
    })
    .await;
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale_rfc9111_5_2_2_2() {
    never_served_stale("must-revalidate").await;
}

/// `directive` forbids serving a stale page: a request's `max-stale` and the cache's
/// own stale window are both ignored. The control without it is served stale.
pub(super) async fn never_served_stale(directive: &'static str) {
    each_way(BOTH, move |way| async move {
        let stale_window =
            |layer: cachemacro_runtime::PageCacheLayer| layer.stale(Duration::from_secs(3600));
        // Age 60 with max-age=60: stale on arrival, without sleeping.
        let max_stale = || {
            Req::get("/page")
                .header("cache-control", "max-stale=3600")
                .header("x-test", "max-stale")
        };
        let control = way
            .start_with(stale_window, move |seen: &Seen| {
                aged(validated_page("max-age=60", "\"v1\"", "max-age=60")(seen))
            })
            .await;
        let strict = way
            .start_with(stale_window, move |seen: &Seen| {
                let (cache_control, on_304) = match directive {
                    "must-revalidate" => {
                        ("max-age=60, must-revalidate", "max-age=0, must-revalidate")
                    }
                    _ => (
                        "max-age=60, proxy-revalidate",
                        "max-age=0, proxy-revalidate",
                    ),
                };
                // The 304 keeps the page stale, so that the next request revalidates too.
                aged(validated_page(cache_control, "\"v1\"", on_304)(seen))
            })
            .await;
        control.get("/page").await;
        strict.get("/page").await;

        let stale = control.send(max_stale()).await;
        assert_eq!(
            (stale.x_cache(), stale.body.as_str()),
            ("STALE", "render 1"),
            "the control is served stale on max-stale"
        );
        let checked = strict.send(max_stale()).await;
        assert_eq!(
            (checked.x_cache(), checked.body.as_str()),
            ("REVALIDATED", "render 1"),
            "{directive}: revalidated despite max-stale"
        );
        assert_eq!(strict.not_modified(), 1);

        // The stale window: while one request revalidates, the others of the control
        // get the stale page at once; those of a `directive` page wait for the answer.
        for (app, waits) in [(&control, false), (&strict, true)] {
            let (leader, follower) = app.get_during_revalidation("/page").await;
            assert_eq!(leader.body, "render 1");
            match (follower, waits) {
                (None, true) => {}
                (Some(answer), false) => assert_eq!(
                    (answer.x_cache(), answer.body.as_str()),
                    ("STALE", "render 1"),
                    "served stale during the revalidation"
                ),
                (Some(answer), true) => panic!(
                    "{directive}: answered {} while the page was being revalidated",
                    answer.x_cache()
                ),
                (None, false) => panic!("the control waited for the revalidation"),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revalidations_share_one_conditional_request_rfc9111_4_3() {
    const REQUESTS: usize = 20;
    each_way(BOTH, |way| async move {
        let app = Arc::new(
            way.start(move |seen: &Seen| {
                aged(validated_page("max-age=60", "\"v1\"", "max-age=600")(seen))
            })
            .await,
        );
        app.get("/page").await;
        let gate = app.hold_conditionals();
        let barrier = Arc::new(Barrier::new(REQUESTS));
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let (app, barrier) = (Arc::clone(&app), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    app.get("/page").await
                })
            })
            .collect();
        let upstream = async {
            while app.seen().len() < 2 {
                tokio::task::yield_now().await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), upstream)
            .await
            .is_err()
        {
            gate.add_permits(REQUESTS);
            panic!("the stale page was not revalidated upstream");
        }
        // Let every request reach the flight before the 304 is given.
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.add_permits(REQUESTS);
        for task in tasks {
            let answer = task.await.unwrap();
            assert_eq!((answer.status, answer.body.as_str()), (200, "render 1"));
        }
        assert_eq!(
            (app.seen().len(), app.renders(), app.not_modified()),
            (2, 1, 1),
            "one conditional request for {REQUESTS} clients"
        );
    })
    .await;
}
