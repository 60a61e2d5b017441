use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Only non-empty results are kept.
#[memoize(cache_if = |found: &Vec<u32>| !found.is_empty())]
fn search(term: &str) -> Vec<u32> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    if term == "rust" {
        vec![1, 2]
    } else {
        Vec::new()
    }
}

fn is_permanent(result: &Result<u32, String>) -> bool {
    !matches!(result, Err(message) if message == "retry")
}

/// `cache_if` sees the whole `Result`, so it decides for `Err` values too.
#[memoize(cache_if = is_permanent)]
fn lookup(id: u32) -> Result<u32, String> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    match id {
        0 => Err("retry".to_owned()),
        _ => Ok(id),
    }
}

fn main() {
    assert!(search("go").is_empty());
    assert!(search("go").is_empty());
    assert_eq!(search("rust"), [1, 2]);
    assert_eq!(search("rust"), [1, 2]);
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);

    assert!(lookup(0).is_err());
    assert!(lookup(0).is_err());
    assert_eq!(lookup(4), Ok(4));
    assert_eq!(lookup(4), Ok(4));
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 3);
}
