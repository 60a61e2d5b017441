use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Not `Hash`: only its `id` goes into the key.
#[derive(Clone)]
struct User {
    id: u64,
    name: String,
}

#[memoize(key = user.id)]
fn greeting(user: &User) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("hello {}", user.name)
}

#[memoize(key = (x, y))]
fn manhattan((x, y): (i64, i64)) -> i64 {
    x.abs() + y.abs()
}

#[memoize(key = id)]
fn fetch(id: u64, log: &mut Vec<String>) -> u64 {
    log.push(format!("fetched {id}"));
    id * 2
}

fn main() {
    let ann = User {
        id: 1,
        name: "ann".to_owned(),
    };
    let renamed = User {
        name: "anne".to_owned(),
        ..ann.clone()
    };
    assert_eq!(greeting(&ann), "hello ann");
    // Same id, so the cached greeting is returned.
    assert_eq!(greeting(&renamed), "hello ann");
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert!(greeting::invalidate(&renamed));

    assert_eq!(manhattan((3, -4)), 7);
    assert_eq!(manhattan((3, -4)), 7);
    assert_eq!(manhattan::stats().hits, 1);
    assert!(manhattan::invalidate((3, -4)));

    let mut log = Vec::new();
    assert_eq!(fetch(5, &mut log), 10);
    assert_eq!(fetch(5, &mut log), 10);
    assert_eq!(log, ["fetched 5"]);
    // The companion takes only the arguments the key expression mentions.
    assert!(fetch::invalidate(5));
}
