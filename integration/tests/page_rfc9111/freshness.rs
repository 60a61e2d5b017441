//! Freshness lifetime (RFC 9111 §4.2.1, §5.2.2.1, §5.3): `max-age` over `Expires − Date`;
//! an expired, equal or invalid `Expires` is a lifetime of zero, stored only with a
//! validator.

use std::time::SystemTime;

use super::harness::{
    asctime_date, each_way, each_way_over, imf_fixdate, rfc850_date, shifted, validated_page,
    Reply, Req, Seen, Transport, BOTH,
};

/// A page that says `Date: now` and the `headers` given, without a validator.
fn dated_page(
    headers: &'static [(&'static str, &'static str)],
    expires: impl Fn() -> String + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        let mut reply = Reply::ok(format!("render {}", seen.call))
            .header("date", imf_fixdate(SystemTime::now()))
            .header("expires", expires());
        for (name, value) in headers {
            reply = reply.header(name, *value);
        }
        reply
    }
}

#[tokio::test]
async fn expires_gives_freshness_rfc9111_4_2_1() {
    type DateForm = fn(SystemTime) -> String;
    let forms: [(&str, DateForm); 3] = [
        ("IMF-fixdate", imf_fixdate),
        ("RFC 850", rfc850_date),
        ("asctime", asctime_date),
    ];
    each_way(BOTH, move |way| async move {
        for (form, format) in forms {
            // `Expires − Date` is an hour. An `Age` of 20 minutes is past the default TTL
            // of 10, so a hit shows that the lifetime came from `Expires`.
            let app = way
                .start(dated_page(&[("age", "1200")], move || {
                    format(shifted(3600))
                }))
                .await;
            assert!(
                app.stores(Req::get("/page")).await,
                "Expires in {form} form"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn expires_without_date_counts_from_arrival_rfc9111_4_2_1() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call))
                    .header("expires", imf_fixdate(shifted(3600)))
                    .header("age", "1200")
            })
            .await;
        assert!(app.stores(Req::get("/page")).await);
    })
    .await;
}

#[tokio::test]
async fn expires_past_is_stale_rfc9111_5_3() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(dated_page(&[], || imf_fixdate(shifted(-3600))))
            .await;
        assert!(
            !app.stores(Req::get("/page")).await,
            "an Expires in the past without a validator is not stored"
        );
    })
    .await;
}

#[tokio::test]
async fn expires_invalid_is_stale_rfc9111_5_3() {
    each_way(BOTH, |way| async move {
        for invalid in ["0", "-1", "next tuesday"] {
            let app = way.start(dated_page(&[], move || invalid.to_owned())).await;
            assert!(
                !app.stores(Req::get("/page")).await,
                "Expires: {invalid} is already expired"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn expires_equal_to_date_is_stale_rfc9111_4_2_1() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                let now = imf_fixdate(SystemTime::now());
                Reply::ok(format!("render {}", seen.call))
                    .header("date", now.clone())
                    .header("expires", now)
            })
            .await;
        assert!(!app.stores(Req::get("/page")).await);
    })
    .await;
}

#[tokio::test]
async fn max_age_wins_over_expires_rfc9111_5_2_2_1() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(dated_page(&[("cache-control", "max-age=3600")], || {
                imf_fixdate(shifted(-3600))
            }))
            .await;
        assert!(
            app.stores(Req::get("/page")).await,
            "max-age=3600 over an Expires in the past"
        );
        let app = way
            .start(dated_page(&[("cache-control", "max-age=0")], || {
                imf_fixdate(shifted(3600))
            }))
            .await;
        assert!(
            !app.stores(Req::get("/page")).await,
            "max-age=0 over an Expires an hour ahead"
        );
    })
    .await;
}

#[tokio::test]
async fn zero_lifetime_with_a_validator_is_revalidated_every_time_rfc9111_4_2_1() {
    each_way(BOTH, |way| async move {
        let zero_lifetimes = [
            ("max-age=0", "cache-control", "max-age=0".to_owned()),
            (
                "an Expires in the past",
                "expires",
                imf_fixdate(shifted(-3600)),
            ),
            ("Expires: 0", "expires", "0".to_owned()),
        ];
        for (lifetime, name, value) in zero_lifetimes {
            let app = way
                .start(move |seen: &Seen| {
                    let reply = if seen.header("if-none-match") == Some("\"v1\"") {
                        Reply::not_modified().header("etag", "\"v1\"")
                    } else {
                        Reply::ok(format!("render {}", seen.call)).header("etag", "\"v1\"")
                    };
                    reply
                        .header("date", imf_fixdate(SystemTime::now()))
                        .header(name, value.clone())
                })
                .await;
            assert_eq!(app.get("/page").await.x_cache(), "MISS", "{lifetime}");
            for round in 1..=2 {
                let again = app.get("/page").await;
                assert_eq!(
                    (again.status, again.x_cache(), again.body.as_str()),
                    (200, "REVALIDATED", "render 1"),
                    "{lifetime}, revalidation {round}"
                );
                assert_eq!(
                    app.last_seen().header("if-none-match"),
                    Some("\"v1\""),
                    "{lifetime}: the stored ETag is sent upstream"
                );
            }
            assert_eq!((app.renders(), app.not_modified()), (1, 2), "{lifetime}");
        }
    })
    .await;
}

#[tokio::test]
async fn stored_response_gets_a_date_rfc9110_6_6_1() {
    // hyper dates every response on a socket; only `oneshot` shows what the cache did.
    each_way_over(&[Transport::Oneshot], BOTH, |way| async move {
        let app = way
            .start(validated_page("max-age=600", "\"v1\"", "max-age=600"))
            .await;
        let before = SystemTime::now() - std::time::Duration::from_secs(1);
        app.get("/page").await;
        let hit = app.get("/page").await;
        assert_eq!(hit.x_cache(), "HIT");
        let date = hit
            .header("date")
            .expect("a stored response without Date is given one");
        let date = httpdate::parse_http_date(date).expect("an HTTP date");
        assert!(date >= before && date <= SystemTime::now());
        assert_eq!(
            app.get("/page").await.header("date"),
            hit.header("date"),
            "the date the response was stored, not of each hit"
        );
    })
    .await;
}
