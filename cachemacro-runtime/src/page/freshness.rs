//! How long a stored page is fresh and how old it is (RFC 9111 §4.2): the freshness
//! lifetime from `s-maxage`, `max-age`, `Expires` or a heuristic, and the current age
//! from `Date`, `Age` and the time the page has spent in the cache.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::cache_control::ResponseDirectives;
use super::mode::PageCacheMode;

/// The freshness of one stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// When the cache received the response (`response_time`).
    pub(crate) response_time: SystemTime,
    /// How old the response already was then (`corrected_initial_age`).
    pub(crate) initial_age: Duration,
    /// The freshness lifetime.
    pub(crate) lifetime: Duration,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: once stale, the page is never
    /// served without a successful revalidation.
    pub(crate) must_revalidate: bool,
    /// What the response allows past its freshness (RFC 5861).
    pub(crate) stale: StaleWindows,
}

/// How long past its freshness a response allows itself to be served, by its
/// `stale-while-revalidate` and `stale-if-error` directives (RFC 5861).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StaleWindows {
    /// While one request refreshes it; `None` leaves it to the cache's `stale` window.
    pub(crate) while_revalidate: Option<Duration>,
    /// When refreshing it fails.
    pub(crate) if_error: Duration,
}

impl StaleWindows {
    /// The windows `directives` grant.
    pub(crate) fn of(directives: &ResponseDirectives) -> StaleWindows {
        StaleWindows {
            while_revalidate: directives.stale_while_revalidate,
            if_error: directives.stale_if_error.unwrap_or_default(),
        }
    }
}

impl Freshness {
    /// `current_age` (§4.2.3): the initial age plus the time since the response arrived.
    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        self.initial_age + now.duration_since(self.response_time).unwrap_or_default()
    }

    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.lifetime
    }

    /// How much longer the page stays fresh.
    pub(crate) fn remaining(&self, now: SystemTime) -> Duration {
        self.lifetime.saturating_sub(self.age(now))
    }

    /// How long the page has been stale at `now` (zero while fresh).
    pub(crate) fn staleness(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// Whether the page may answer at `now` in place of a failed refresh (RFC 5861 §4).
    /// `must-revalidate` forbids it: a failure is no successful revalidation.
    pub(crate) fn may_answer_failure(&self, now: SystemTime) -> bool {
        !self.must_revalidate && self.staleness(now) < self.stale.if_error
    }
}

/// A date in any of RFC 9110 §5.6.7's three forms (IMF-fixdate, RFC 850, asctime).
pub(crate) fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

/// `time` as an IMF-fixdate header value (`Date`, `Expires`).
pub(crate) fn http_date_value(time: SystemTime) -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(time))
        .expect("an HTTP date is a valid header value")
}

/// The one value of a field that must not repeat, or `None`.
fn single<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// `Date`, or the time the response arrived when it has none (or an unreadable one).
fn date_value(headers: &HeaderMap, response_time: SystemTime) -> SystemTime {
    single(headers, &DATE)
        .and_then(http_date)
        .unwrap_or(response_time)
}

/// `corrected_initial_age` (§4.2.3) for a response received at `response_time`, with no
/// transit delay (the inner service runs in this process).
pub(crate) fn initial_age(headers: &HeaderMap, response_time: SystemTime) -> Duration {
    let apparent_age = response_time
        .duration_since(date_value(headers, response_time))
        .unwrap_or_default();
    // §5.1: a non-negative integer; anything else is ignored.
    let age_value = single(headers, &AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    apparent_age.max(age_value)
}

/// The statuses RFC 9110 §15.1 lets a cache give heuristic freshness (206 aside: the page
/// cache stores whole responses only).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The freshness lifetime of a response (§4.2.1), or `None` when it gives no freshness
/// information a shared cache may act on.
///
/// `s-maxage` wins over `max-age`, which wins over `Expires − Date`; an invalid `Expires`
/// is a date in the past. Without any of them, the application's cache uses
/// `default_ttl`, a shared cache 10 % of the time since `Last-Modified` (§4.2.2) for the
/// statuses that allow it.
pub(crate) fn lifetime(
    mode: PageCacheMode,
    directives: &ResponseDirectives,
    status: StatusCode,
    headers: &HeaderMap,
    response_time: SystemTime,
    default_ttl: Duration,
) -> Option<Duration> {
    if let Some(lifetime) = directives.s_maxage.or(directives.max_age) {
        return Some(lifetime);
    }
    if headers.contains_key(EXPIRES) {
        let Some(expires) = single(headers, &EXPIRES).and_then(http_date) else {
            return Some(Duration::ZERO);
        };
        let date = date_value(headers, response_time);
        return Some(expires.duration_since(date).unwrap_or_default());
    }
    match mode {
        PageCacheMode::Application => Some(default_ttl),
        PageCacheMode::Shared => {
            if !(heuristically_cacheable(status) || directives.public) {
                return None;
            }
            let last_modified = single(headers, &LAST_MODIFIED).and_then(http_date)?;
            let since = date_value(headers, response_time)
                .duration_since(last_modified)
                .ok()?;
            Some(since / 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    fn at(seconds: i64) -> SystemTime {
        let now = SystemTime::UNIX_EPOCH + NOW;
        if seconds >= 0 {
            now + Duration::from_secs(seconds as u64)
        } else {
            now - Duration::from_secs(seconds.unsigned_abs())
        }
    }

    fn date(seconds: i64) -> HeaderValue {
        HeaderValue::try_from(httpdate::fmt_http_date(at(seconds))).unwrap()
    }

    fn headers(pairs: Vec<(&'static str, HeaderValue)>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, value);
        }
        map
    }

    fn lifetime_of(mode: PageCacheMode, status: u16, map: &HeaderMap) -> Option<Duration> {
        lifetime(
            mode,
            &ResponseDirectives::parse(map),
            StatusCode::from_u16(status).unwrap(),
            map,
            at(0),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn every_date_form_of_rfc9110_is_read_and_nothing_else() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                http_date(&HeaderValue::from_static(form)),
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)),
                "{form}"
            );
        }
        for invalid in ["0", "-1", "tomorrow", "2024-01-01T00:00:00Z", ""] {
            assert_eq!(
                http_date(&HeaderValue::from_static(invalid)),
                None,
                "{invalid}"
            );
        }
    }

    #[test]
    fn expires_minus_date_is_the_lifetime_and_max_age_wins() {
        let app = PageCacheMode::Application;
        let map = headers(vec![("date", date(0)), ("expires", date(120))]);
        assert_eq!(lifetime_of(app, 200, &map), Some(Duration::from_secs(120)));
        let past = headers(vec![("date", date(0)), ("expires", date(-5))]);
        assert_eq!(lifetime_of(app, 200, &past), Some(Duration::ZERO));
        let equal = headers(vec![("date", date(0)), ("expires", date(0))]);
        assert_eq!(lifetime_of(app, 200, &equal), Some(Duration::ZERO));
        let invalid = headers(vec![("expires", HeaderValue::from_static("0"))]);
        assert_eq!(lifetime_of(app, 200, &invalid), Some(Duration::ZERO));
        let both = headers(vec![
            ("expires", HeaderValue::from_static("0")),
            (
                "cache-control",
                HeaderValue::from_static("max-age=30, s-maxage=90"),
            ),
        ]);
        assert_eq!(lifetime_of(app, 200, &both), Some(Duration::from_secs(90)));
        assert_eq!(
            lifetime_of(app, 200, &HeaderMap::new()),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn a_shared_cache_uses_a_tenth_of_last_modified_or_nothing() {
        let shared = PageCacheMode::Shared;
        assert_eq!(lifetime_of(shared, 200, &HeaderMap::new()), None);
        let modified = headers(vec![("date", date(0)), ("last-modified", date(-1000))]);
        assert_eq!(
            lifetime_of(shared, 200, &modified),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            lifetime_of(shared, 404, &modified),
            Some(Duration::from_secs(100))
        );
        assert_eq!(lifetime_of(shared, 302, &modified), None);
    }

    #[test]
    fn the_age_is_the_larger_of_apparent_and_stated_age_plus_residence() {
        let stated = headers(vec![
            ("age", HeaderValue::from_static("100")),
            ("date", date(0)),
        ]);
        assert_eq!(initial_age(&stated, at(0)), Duration::from_secs(100));
        let apparent = headers(vec![
            ("age", HeaderValue::from_static("3")),
            ("date", date(-20)),
        ]);
        assert_eq!(initial_age(&apparent, at(0)), Duration::from_secs(20));
        let garbage = headers(vec![("age", HeaderValue::from_static("old"))]);
        assert_eq!(initial_age(&garbage, at(0)), Duration::ZERO);
        let freshness = Freshness {
            response_time: at(0),
            initial_age: Duration::from_secs(100),
            lifetime: Duration::from_secs(120),
            must_revalidate: false,
            stale: StaleWindows {
                while_revalidate: None,
                if_error: Duration::from_secs(30),
            },
        };
        assert_eq!(freshness.age(at(15)), Duration::from_secs(115));
        assert!(freshness.is_fresh(at(19)));
        assert!(!freshness.is_fresh(at(20)));
        assert_eq!(freshness.remaining(at(5)), Duration::from_secs(15));
        assert_eq!(freshness.staleness(at(25)), Duration::from_secs(5));
        assert!(freshness.may_answer_failure(at(49)));
        assert!(
            !freshness.may_answer_failure(at(50)),
            "30 s past its freshness"
        );
        let strict = Freshness {
            must_revalidate: true,
            ..freshness
        };
        assert!(!strict.may_answer_failure(at(21)));
    }
}
