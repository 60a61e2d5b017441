//! Age (RFC 9111 §4.2.3, §5.1): the inner `Age` and a `Date` in the past count towards a
//! page's age; a hit says its current age in whole seconds; a miss forwards the inner
//! `Age`.

use std::time::{Duration, Instant, SystemTime};

use super::harness::{each_way, imf_fixdate, shifted, Reply, Req, Seen, BOTH};

fn aged_page(
    cache_control: &'static str,
    age: &'static str,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        Reply::ok(format!("render {}", seen.call))
            .header("cache-control", cache_control)
            .header("age", age)
    }
}

#[tokio::test]
async fn age_at_or_over_max_age_is_stale_rfc9111_4_2_3() {
    each_way(BOTH, |way| async move {
        for age in ["60", "61", "3600"] {
            let app = way.start(aged_page("max-age=60", age)).await;
            assert!(
                !app.stores(Req::get("/page")).await,
                "Age: {age} with max-age=60 is stale on arrival"
            );
        }
        let app = way.start(aged_page("max-age=60", "50")).await;
        assert!(
            app.stores(Req::get("/page")).await,
            "Age: 50 is still fresh"
        );
    })
    .await;
}

#[tokio::test]
async fn apparent_age_counts_a_date_in_the_past_rfc9111_4_2_3() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call))
                    .header("cache-control", "max-age=60")
                    .header("date", imf_fixdate(shifted(-120)))
            })
            .await;
        assert!(
            !app.stores(Req::get("/page")).await,
            "dated two minutes ago with max-age=60: stale on arrival"
        );
        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call))
                    .header("cache-control", "max-age=600")
                    .header("date", imf_fixdate(shifted(-30)))
            })
            .await;
        app.get("/page").await;
        let hit = app.get("/page").await;
        assert_eq!(hit.x_cache(), "HIT");
        let age = hit.age().expect("a hit says its age");
        assert!(
            (30..=32).contains(&age),
            "dated 30 s ago, so about 30 s old: Age {age}"
        );
    })
    .await;
}

#[tokio::test]
async fn age_adds_resident_time_rfc9111_5_1() {
    each_way(BOTH, |way| async move {
        let app = way.start(aged_page("max-age=600", "100")).await;
        let stored = Instant::now();
        app.get("/page").await;
        let hit = app.get("/page").await;
        assert_eq!(hit.x_cache(), "HIT");
        let age = hit.age().expect("a hit says its age");
        assert!((100..=101).contains(&age), "just stored: Age {age}");

        tokio::time::sleep(Duration::from_millis(2200)).await;
        let later = app.get("/page").await;
        let resident = stored.elapsed().as_secs();
        let age = later.age().expect("a hit says its age");
        assert!(
            (102..=100 + resident + 1).contains(&age),
            "100 s upstream and {resident} s here: Age {age}"
        );
        assert_eq!(app.renders(), 1);
    })
    .await;
}

#[tokio::test]
async fn age_is_forwarded_on_a_miss_rfc9111_5_1() {
    each_way(BOTH, |way| async move {
        let app = way.start(aged_page("max-age=600", "30")).await;
        let miss = app.get("/page").await;
        assert_eq!(miss.x_cache(), "MISS");
        assert_eq!(miss.header("age"), Some("30"));
        // And one that is not stored forwards it too.
        let app = way.start(aged_page("no-store", "30")).await;
        let pass = app.get("/page").await;
        assert_eq!(pass.header("age"), Some("30"));
    })
    .await;
}

#[tokio::test]
async fn a_hit_always_says_its_age_rfc9111_5_1() {
    each_way(BOTH, |way| async move {
        let app = way
            .start(|seen: &Seen| {
                Reply::ok(format!("render {}", seen.call))
                    .header("cache-control", "max-age=600")
                    .header("date", imf_fixdate(SystemTime::now()))
            })
            .await;
        app.get("/page").await;
        let hit = app.get("/page").await;
        assert_eq!(hit.x_cache(), "HIT");
        assert!(
            hit.age().expect("Age on every hit") <= 1,
            "stored a moment ago"
        );
    })
    .await;
}
