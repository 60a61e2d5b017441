use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// `_` cannot influence the result, so it is not part of the key.
#[memoize]
fn countdown(mut n: u32, _: &str) -> Vec<u32> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    let mut steps = Vec::new();
    while n > 0 {
        steps.push(n);
        n -= 1;
    }
    steps
}

fn main() {
    assert_eq!(countdown(3, "a"), [3, 2, 1]);
    assert_eq!(countdown(3, "b"), [3, 2, 1]);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert!(countdown::invalidate(3));
}
