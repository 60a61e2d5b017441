use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "1h")]
async fn profile(user: &str, id: u64) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    format!("{user}#{id}")
}

#[derive(Debug, PartialEq)]
struct NotFound;

#[memoize]
async fn lookup(id: u64) -> Result<u64, NotFound> {
    tokio::task::yield_now().await;
    if id == 0 {
        return Err(NotFound);
    }
    Ok(id * 10)
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Shard(u8);

impl Shard {
    #[memoize]
    async fn owner(&self, key: &str) -> String {
        tokio::task::yield_now().await;
        format!("shard-{}:{key}", self.0)
    }
}

static WARMED: AtomicUsize = AtomicUsize::new(0);

/// No return type: the output `()` is cached like any other value.
#[memoize]
async fn warm_up(region: &str) {
    let _ = region;
    WARMED.fetch_add(1, Ordering::SeqCst);
}

fn assert_send<T: Send>(_: T) {}

#[tokio::main]
async fn main() {
    assert_send(profile("ann", 1));
    assert_send(lookup(1));
    assert_send(Shard(1).owner("k"));

    assert_eq!(profile("ann", 1).await, "ann#1");
    assert_eq!(profile("ann", 1).await, "ann#1");
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(profile::stats().hits, 1);

    assert_eq!(lookup(0).await, Err(NotFound));
    assert_eq!(lookup(2).await, Ok(20));
    assert_eq!(lookup(2).await, Ok(20));
    assert_eq!(lookup::stats().hits, 1);

    let handle = tokio::spawn(async { Shard(3).owner("k").await });
    assert_eq!(handle.await.unwrap(), "shard-3:k");
    assert_eq!(Shard(3).owner("k").await, "shard-3:k");
    assert_eq!(Shard::owner_stats().hits, 1);

    warm_up("eu").await;
    warm_up("eu").await;
    assert_eq!(WARMED.load(Ordering::SeqCst), 1);
}
