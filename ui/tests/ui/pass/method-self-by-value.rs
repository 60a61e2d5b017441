use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct Celsius(i64);

impl Celsius {
    #[memoize]
    fn to_fahrenheit(self) -> i64 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        self.0 * 9 / 5 + 32
    }
}

fn main() {
    assert_eq!(Celsius(100).to_fahrenheit(), 212);
    assert_eq!(Celsius(100).to_fahrenheit(), 212);
    assert_eq!(Celsius(0).to_fahrenheit(), 32);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert!(Celsius(0).to_fahrenheit_invalidate());
    assert_eq!(Celsius::to_fahrenheit_stats().hits, 1);
}
