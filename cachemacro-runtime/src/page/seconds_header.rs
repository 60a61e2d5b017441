//! The `Age` and `Cache-Control: max-age=<seconds>` values written on every hit. Within
//! one second every hit of a page writes the same two values, so each thread keeps the
//! values it made last in a small table indexed by the number of seconds: a hit then
//! clones a value (a reference count on this thread's own value) instead of formatting
//! and allocating one.

use std::cell::RefCell;

use bytes::Bytes;
use http::HeaderValue;

/// Entries per table and thread: enough for the distinct lifetimes and ages of the pages
/// one thread serves within a few seconds.
const SLOTS: usize = 64;

type Table = [Option<(u64, HeaderValue)>; SLOTS];

thread_local! {
    static AGES: RefCell<Table> = const { RefCell::new([const { None }; SLOTS]) };
    static MAX_AGES: RefCell<Table> = const { RefCell::new([const { None }; SLOTS]) };
}

fn remembered(
    table: &'static std::thread::LocalKey<RefCell<Table>>,
    seconds: u64,
    text: impl FnOnce() -> String,
) -> HeaderValue {
    let make = |text: String| {
        HeaderValue::from_maybe_shared(Bytes::from(text)).expect("digits are a valid header value")
    };
    let mut text = Some(text);
    let found = table.try_with(|table| {
        let mut table = table.borrow_mut();
        let slot = &mut table[(seconds % SLOTS as u64) as usize];
        match slot {
            Some((kept, value)) if *kept == seconds => value.clone(),
            _ => {
                let value = make(text.take().expect("made once")());
                slot.insert((seconds, value)).1.clone()
            }
        }
    });
    // The thread is shutting down: no table, make one value.
    found.unwrap_or_else(|_| make(text.take().expect("made once")()))
}

/// The `Age` value of `seconds`.
pub(super) fn age(seconds: u64) -> HeaderValue {
    remembered(&AGES, seconds, || seconds.to_string())
}

/// The `Cache-Control` value `max-age=<seconds>`.
pub(super) fn max_age(seconds: u64) -> HeaderValue {
    remembered(&MAX_AGES, seconds, || format!("max-age={seconds}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_and_new_values_read_the_same() {
        for seconds in [0, 1, 59, 63, 64, 3600, 86_400, u64::MAX, 0, 64] {
            assert_eq!(age(seconds), seconds.to_string().as_str());
            assert_eq!(max_age(seconds), format!("max-age={seconds}").as_str());
        }
        assert_eq!(age(42), age(42));
    }
}
