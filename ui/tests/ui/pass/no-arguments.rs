use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn config() -> Vec<String> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    vec!["debug".to_owned()]
}

#[memoize]
fn side_effect() {
    CALLS.fetch_add(10, Ordering::SeqCst);
}

fn main() {
    assert_eq!(config(), ["debug"]);
    assert_eq!(config(), ["debug"]);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert!(config::invalidate());
    config::clear();
    side_effect();
    side_effect();
    assert_eq!(CALLS.load(Ordering::SeqCst), 11);
    assert_eq!(side_effect::stats().hits, 1);
}
