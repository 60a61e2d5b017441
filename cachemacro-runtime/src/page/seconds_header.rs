//! The `Age` and `Cache-Control: max-age=<seconds>` values written on every hit, made
//! once per number of seconds: a value of its own for each response would be an
//! allocation per hit, and a shared one a reference count that every core bumps.

use std::sync::OnceLock;

use http::HeaderValue;

/// Values up to an hour are kept; the largest ages and lifetimes are rare enough to
/// format per response.
const KEPT: usize = 3600;

static AGES: [OnceLock<HeaderValue>; KEPT] = [const { OnceLock::new() }; KEPT];
static MAX_AGES: [OnceLock<HeaderValue>; KEPT] = [const { OnceLock::new() }; KEPT];

/// A value of static bytes: cloning it copies a pointer. The text is leaked once per
/// number of seconds, at most `KEPT` times per table.
fn leaked(text: String) -> HeaderValue {
    HeaderValue::from_static(Box::leak(text.into_boxed_str()))
}

fn kept(
    table: &'static [OnceLock<HeaderValue>; KEPT],
    seconds: u64,
    text: impl FnOnce() -> String,
) -> HeaderValue {
    match table.get(seconds as usize) {
        Some(cell) => cell.get_or_init(|| leaked(text())).clone(),
        None => HeaderValue::try_from(text()).expect("digits are a valid header value"),
    }
}

/// The `Age` value of `seconds`.
pub(super) fn age(seconds: u64) -> HeaderValue {
    kept(&AGES, seconds, || seconds.to_string())
}

/// The `Cache-Control` value `max-age=<seconds>`.
pub(super) fn max_age(seconds: u64) -> HeaderValue {
    kept(&MAX_AGES, seconds, || format!("max-age={seconds}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_and_formatted_values_read_the_same() {
        for seconds in [0, 1, 59, 3599, 3600, 86_400, u64::MAX] {
            assert_eq!(age(seconds), seconds.to_string().as_str());
            assert_eq!(max_age(seconds), format!("max-age={seconds}").as_str());
        }
        assert_eq!(age(42), age(42));
    }
}
