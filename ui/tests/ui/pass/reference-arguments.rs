use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Hash, PartialEq, Eq)]
struct Query {
    table: String,
}

#[memoize]
fn describe(name: &str, bytes: &[u8], query: &Query) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{name}:{}:{}", bytes.len(), query.table)
}

fn main() {
    let query = Query {
        table: "users".to_owned(),
    };
    let owned_name = String::from("a");
    let bytes = vec![1, 2, 3];
    assert_eq!(describe(&owned_name, &bytes, &query), "a:3:users");
    // Equal values behind different references hit the same entry.
    assert_eq!(describe("a", &[1, 2, 3], &query.clone()), "a:3:users");
    assert_eq!(describe("a", &[1, 2], &query), "a:2:users");
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    // The companion takes the same borrowed arguments.
    assert!(describe::invalidate("a", &[1, 2, 3], &query));
    assert!(!describe::invalidate("a", &[1, 2, 3], &query));
}
