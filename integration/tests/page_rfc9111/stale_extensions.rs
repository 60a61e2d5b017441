//! The stale extensions (RFC 5861): a response's `stale-while-revalidate` sets its own
//! page's stale window, and its `stale-if-error` lets the page answer in place of a
//! refresh that fails.

use super::harness::{aged, each_way, validated_page, Reply, Seen, BOTH};

#[tokio::test]
async fn stale_while_revalidate_is_the_page_s_stale_window_rfc5861_3() {
    each_way(BOTH, |way| async move {
        // Neither cache has a stale window of its own: only the response grants one.
        let granted = way
            .start(|seen: &Seen| {
                aged(validated_page(
                    "max-age=60, stale-while-revalidate=600",
                    "\"v1\"",
                    "max-age=60, stale-while-revalidate=600",
                )(seen))
            })
            .await;
        let control = way
            .start(|seen: &Seen| aged(validated_page("max-age=60", "\"v1\"", "max-age=60")(seen)))
            .await;
        for (app, served_stale) in [(&granted, true), (&control, false)] {
            app.get("/page").await;
            let (leader, follower) = app.get_during_revalidation("/page").await;
            assert_eq!(leader.body, "render 1");
            match (follower, served_stale) {
                (Some(answer), true) => assert_eq!(
                    (answer.x_cache(), answer.body.as_str()),
                    ("STALE", "render 1"),
                    "served stale during the revalidation, as the response allows"
                ),
                (None, false) => {}
                (Some(answer), false) => panic!(
                    "without stale-while-revalidate: answered {} during the revalidation",
                    answer.x_cache()
                ),
                (None, true) => panic!("stale-while-revalidate=600: waited for the revalidation"),
            }
        }
    })
    .await;
}

/// The first render succeeds with `cache_control`; every later one answers `status`.
fn failing_after_first(
    cache_control: &'static str,
    status: u16,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        if seen.call == 1 {
            aged(validated_page(cache_control, "\"v1\"", cache_control)(seen))
        } else {
            Reply::status(status, format!("failure {}", seen.call))
        }
    }
}

#[tokio::test]
async fn stale_if_error_answers_a_failed_refresh_rfc5861_4() {
    each_way(BOTH, |way| async move {
        for status in [500, 502, 503, 504] {
            let app = way
                .start(failing_after_first(
                    "max-age=60, stale-if-error=600",
                    status,
                ))
                .await;
            app.get("/page").await;
            for attempt in 2..=3 {
                let answer = app.get("/page").await;
                assert_eq!(
                    (answer.status, answer.x_cache(), answer.body.as_str()),
                    (200, "STALE", "render 1"),
                    "{status}, attempt {attempt}: the stale page answers the failure"
                );
                assert_eq!(
                    app.seen().len(),
                    attempt,
                    "every request tries the refresh again"
                );
            }
            assert_eq!(app.stats().stale, 2);
        }
    })
    .await;
}

#[tokio::test]
async fn stale_if_error_has_limits_rfc5861_4() {
    each_way(BOTH, |way| async move {
        let cases = [
            // 60 s stale on arrival is over a 10 s window.
            ("max-age=0, stale-if-error=10", 503, "past its window"),
            // A failure is no successful revalidation (RFC 9111 §5.2.2.2).
            (
                "max-age=60, stale-if-error=600, must-revalidate",
                503,
                "must-revalidate",
            ),
            // Not a failure to reach the origin: the same answer would come again.
            ("max-age=60, stale-if-error=600", 501, "501 is an answer"),
            ("max-age=60", 503, "no stale-if-error"),
        ];
        for (cache_control, status, why) in cases {
            let app = way.start(failing_after_first(cache_control, status)).await;
            app.get("/page").await;
            let answer = app.get("/page").await;
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (status, "failure 2"),
                "{why}: the failure passes through"
            );
            assert_eq!(app.stats().stale, 0, "{why}");
        }
    })
    .await;
}
