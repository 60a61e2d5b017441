//! Request directives (RFC 9111 §5.2.1, §5.4): `max-stale`, `min-fresh`, `only-if-cached`
//! and `no-store` are always honoured; `no-cache`, `max-age` and `Pragma: no-cache`, which
//! let any client force a render, only with `honour_request_no_cache(true)`.

use super::harness::{each_way, validated_page, Reply, Req, Seen, BOTH};

fn fresh_page() -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    |seen: &Seen| Reply::ok(format!("render {}", seen.call)).header("cache-control", "max-age=600")
}

fn with_cache_control(value: &str) -> Req {
    Req::get("/page").header("cache-control", value)
}

#[tokio::test]
async fn only_if_cached_gives_504_rfc9111_5_2_1_7() {
    each_way(BOTH, |way| async move {
        let app = way.start(fresh_page()).await;
        let cold = app.send(with_cache_control("only-if-cached")).await;
        assert_eq!(cold.status, 504, "nothing stored");
        assert_eq!(app.seen().len(), 0, "the inner service is not called");

        app.get("/page").await;
        let hit = app.send(with_cache_control("only-if-cached")).await;
        assert_eq!(
            (hit.status, hit.x_cache(), hit.body.as_str()),
            (200, "HIT", "render 1")
        );

        // A stale page is no usable page either.
        let app = way
            .start(|seen: &Seen| {
                validated_page("max-age=60", "\"v1\"", "max-age=60")(seen).header("age", "60")
            })
            .await;
        app.get("/page").await;
        let stale = app.send(with_cache_control("only-if-cached")).await;
        assert_eq!(stale.status, 504, "stored but stale");
        let allowed = app
            .send(with_cache_control("only-if-cached, max-stale=600"))
            .await;
        assert_eq!(
            (allowed.status, allowed.x_cache(), allowed.body.as_str()),
            (200, "STALE", "render 1"),
            "stale, but within the max-stale the request allows"
        );
        assert_eq!(app.seen().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn max_stale_rfc9111_5_2_1_2() {
    each_way(BOTH, |way| async move {
        // max-age=60 and 100 s old: 40 s past its freshness.
        let app = way
            .start(|seen: &Seen| {
                let reply = validated_page("max-age=60", "\"v1\"", "max-age=60")(seen);
                if reply.status == 304 {
                    reply
                } else {
                    reply.header("age", "100")
                }
            })
            .await;
        app.get("/page").await;
        for directive in ["max-stale=600", "max-stale"] {
            let stale = app.send(with_cache_control(directive)).await;
            assert_eq!(
                (stale.x_cache(), stale.body.as_str()),
                ("STALE", "render 1"),
                "{directive}"
            );
        }
        assert_eq!(app.seen().len(), 1, "served stale without going upstream");
        let strict = app.send(with_cache_control("max-stale=10")).await;
        assert_ne!(strict.x_cache(), "STALE", "40 s stale is over max-stale=10");
        assert_eq!(app.seen().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn min_fresh_rfc9111_5_2_1_3() {
    each_way(BOTH, |way| async move {
        let app = way.start(fresh_page()).await;
        app.get("/page").await;
        let hit = app.send(with_cache_control("min-fresh=60")).await;
        assert_eq!(hit.x_cache(), "HIT", "fresh for 600 s more");
        let rendered = app.send(with_cache_control("min-fresh=900")).await;
        assert_eq!(
            (rendered.x_cache(), rendered.body.as_str()),
            ("MISS", "render 2"),
            "fresh for less than 900 s more: treated as stale"
        );
    })
    .await;
}

#[tokio::test]
async fn request_no_store_rfc9111_5_2_1_5() {
    each_way(BOTH, |way| async move {
        let app = way.start(fresh_page()).await;
        let first = app.send(with_cache_control("no-store")).await;
        assert_eq!(first.body, "render 1");
        let plain = app.get("/page").await;
        assert_eq!(
            (plain.x_cache(), plain.body.as_str()),
            ("MISS", "render 2"),
            "the response to a no-store request was not stored"
        );
        assert_eq!(app.get("/page").await.x_cache(), "HIT");
    })
    .await;
}

#[tokio::test]
async fn request_no_cache_is_ignored_by_default() {
    each_way(BOTH, |way| async move {
        let app = way.start(fresh_page()).await;
        for _ in 0..1_000 {
            let answer = app.send(with_cache_control("no-cache")).await;
            assert_eq!(answer.body, "render 1");
        }
        assert_eq!(app.renders(), 1, "1 000 requests with no-cache, one render");
        for request in [
            with_cache_control("max-age=0"),
            Req::get("/page").header("pragma", "no-cache"),
        ] {
            assert_eq!(app.send(request).await.x_cache(), "HIT");
        }
        assert_eq!(app.renders(), 1);
    })
    .await;
}

#[tokio::test]
async fn request_no_cache_is_honoured_when_enabled_rfc9111_5_2_1_4() {
    each_way(BOTH, |way| async move {
        let honour =
            |layer: cachemacro_runtime::PageCacheLayer| layer.honour_request_no_cache(true);
        let app = way.start_with(honour, fresh_page()).await;
        app.get("/page").await;
        let rendered = app.send(with_cache_control("no-cache")).await;
        assert_eq!(
            (rendered.x_cache(), rendered.body.as_str()),
            ("MISS", "render 2"),
            "no validator upstream: rendered again"
        );

        let app = way
            .start_with(
                honour,
                validated_page("max-age=600", "\"v1\"", "max-age=600"),
            )
            .await;
        app.get("/page").await;
        let revalidated = app.send(with_cache_control("no-cache")).await;
        assert_eq!(
            (revalidated.x_cache(), revalidated.body.as_str()),
            ("REVALIDATED", "render 1")
        );
        assert_eq!(app.last_seen().header("if-none-match"), Some("\"v1\""));
        assert_eq!((app.renders(), app.not_modified()), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn pragma_no_cache_rfc9111_5_4() {
    each_way(BOTH, |way| async move {
        let app = way
            .start_with(|layer| layer.honour_request_no_cache(true), fresh_page())
            .await;
        app.get("/page").await;
        let rendered = app
            .send(Req::get("/page").header("pragma", "no-cache"))
            .await;
        assert_eq!(
            (rendered.x_cache(), rendered.body.as_str()),
            ("MISS", "render 2")
        );
        let with_cache_control = app
            .send(
                Req::get("/page")
                    .header("pragma", "no-cache")
                    .header("cache-control", "min-fresh=1"),
            )
            .await;
        assert_eq!(
            with_cache_control.x_cache(),
            "HIT",
            "Pragma is ignored when Cache-Control is present"
        );
    })
    .await;
}

#[tokio::test]
async fn request_max_age_rfc9111_5_2_1_1() {
    each_way(BOTH, |way| async move {
        let aged = |seen: &Seen| {
            Reply::ok(format!("render {}", seen.call))
                .header("cache-control", "max-age=600")
                .header("age", "100")
        };
        let app = way
            .start_with(|layer| layer.honour_request_no_cache(true), aged)
            .await;
        app.get("/page").await;
        let hit = app.send(with_cache_control("max-age=500")).await;
        assert_eq!(hit.x_cache(), "HIT", "100 s old is within max-age=500");
        let rendered = app.send(with_cache_control("max-age=50")).await;
        assert_eq!(
            (rendered.x_cache(), rendered.body.as_str()),
            ("MISS", "render 2"),
            "100 s old is over max-age=50"
        );

        let app = way.start(aged).await;
        app.get("/page").await;
        let ignored = app.send(with_cache_control("max-age=50")).await;
        assert_eq!(ignored.x_cache(), "HIT", "ignored by default");
    })
    .await;
}
