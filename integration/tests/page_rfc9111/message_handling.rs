//! Message handling (RFC 9110 §7.6.1, §7.8, §9.3.2): `HEAD` from a stored `GET`,
//! hop-by-hop headers neither stored nor sent, `Upgrade` requests untouched.

use super::harness::{each_way, Reply, Req, Seen, Transport, BOTH};

#[tokio::test]
async fn head_is_answered_from_a_stored_get_rfc9110_9_3_2() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call))
                    .header("cache-control", "max-age=600")
                    .header("etag", "\"v1\"")
                    .header("x-kept", "yes")
            })
            .await;
        let get = app.get("/page").await;
        let head = app.send(Req::new("HEAD", "/page")).await;
        assert_eq!(
            (head.status, head.x_cache(), head.body.as_str()),
            (200, "HIT", "")
        );
        assert_eq!(head.header("content-length"), Some("8"), "the GET's length");
        for name in ["etag", "cache-control", "x-kept", "content-type"] {
            assert_eq!(head.header(name), get.header(name), "{name}");
        }
        assert_eq!(app.renders(), 1);
        assert!(
            app.seen().iter().all(|seen| seen.method == "GET"),
            "the inner service renders a GET"
        );
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_stored_or_forwarded_rfc9110_7_6_1() {
    each_way(BOTH, |way| async move {
        // hyper frames the socket's messages itself and refuses some of these in a
        // response it writes; those are checked through `oneshot` only.
        let framing = way.transport == Transport::Oneshot;
        let app = way
            .start(move |seen: &Seen| {
                let mut reply = Reply::ok(format!("render {}", seen.call))
                    .header("cache-control", "max-age=600")
                    .header("connection", "x-trace")
                    .header("x-trace", "1")
                    .header("keep-alive", "timeout=5")
                    .header("proxy-connection", "keep-alive")
                    .header("proxy-authenticate", "Basic realm=\"upstream\"")
                    .header("proxy-authorization", "Basic dXA6c3RyZWFt")
                    .header("trailer", "x-checksum")
                    .header("x-kept", "yes");
                if framing {
                    reply = reply
                        .header("te", "trailers")
                        .header("upgrade", "h2c")
                        .header("transfer-encoding", "chunked");
                }
                reply
            })
            .await;
        let mut hop_by_hop = vec![
            "x-trace",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "trailer",
        ];
        if framing {
            hop_by_hop.extend(["connection", "te", "upgrade", "transfer-encoding"]);
        }
        let miss = app.get("/page").await;
        let hit = app.get("/page").await;
        assert_eq!((miss.x_cache(), hit.x_cache()), ("MISS", "HIT"));
        assert_eq!(hit.body, "render 1");
        for (answer, what) in [(&miss, "miss"), (&hit, "hit")] {
            assert_eq!(answer.header("x-kept"), Some("yes"), "{what}");
            for name in &hop_by_hop {
                assert_eq!(answer.header(name), None, "{name} on a {what}");
            }
        }
        if !framing {
            assert_ne!(
                hit.header("connection"),
                Some("x-trace"),
                "the stored Connection is not sent"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn upgrade_requests_bypass_the_cache_rfc9110_7_8() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call)).header("cache-control", "max-age=600")
            })
            .await;
        let upgrade = || {
            Req::get("/page")
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("sec-websocket-version", "13")
        };
        let cold = app.send(upgrade()).await;
        assert_eq!(cold.body, "render 1");
        assert_eq!(cold.x_cache(), "", "the cache stays out of it");
        assert_eq!(
            app.get("/page").await.x_cache(),
            "MISS",
            "an upgrade request does not fill the cache"
        );
        assert_eq!(app.get("/page").await.x_cache(), "HIT");
        let stored = app.send(upgrade()).await;
        assert_eq!(
            (stored.x_cache(), stored.body.as_str()),
            ("", "render 3"),
            "an upgrade request is not answered from the cache"
        );
        let seen = app.last_seen();
        assert_eq!(seen.header("upgrade"), Some("websocket"));
        assert_eq!(
            seen.header("sec-websocket-key"),
            Some("dGhlIHNhbXBsZSBub25jZQ=="),
            "forwarded untouched"
        );
    })
    .await;
}
