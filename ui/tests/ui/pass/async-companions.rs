#![deny(warnings, unused_qualifications)]
//! The async companions take the arguments of the sync ones, resolve to the same
//! answers, and are `Send`, so a spawned task or an axum handler can await them.

use cachemacro_runtime::memoize;
use std::hash::Hash;

#[allow(dead_code)]
mod core {}

#[memoize(ttl = "1h")]
async fn profile(user: &str, id: u64) -> String {
    format!("{user}#{id}")
}

/// A sync function's caches are reachable from async code too.
#[memoize]
fn square(n: u64) -> u64 {
    n * n
}

#[memoize]
fn describe<T: Clone + Hash + Eq + Send + Sync + 'static + ::std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

#[derive(Clone)]
struct User {
    id: u64,
}

#[memoize(key = user.id)]
async fn greeting(user: &User) -> String {
    format!("hello {}", user.id)
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Shard(u8);

impl Shard {
    #[memoize]
    async fn owner(&self, key: &str) -> String {
        format!("shard-{}:{key}", self.0)
    }

    #[memoize(ignore(self))]
    fn region(&self, key: &str) -> String {
        format!("region:{key}")
    }
}

fn assert_send<T: Send>(_: T) {}

#[tokio::main]
async fn main() {
    assert_send(profile::invalidate_async("ann", 1));
    assert_send(profile::clear_async());
    assert_send(Shard(1).owner_invalidate_async("k"));
    assert_send(Shard::owner_clear_async());

    assert_eq!(profile("ann", 1).await, "ann#1");
    let removed: bool = tokio::spawn(profile::invalidate_async("ann", 1))
        .await
        .unwrap();
    assert!(removed);
    assert!(!profile::invalidate_async("ann", 1).await);
    profile::clear_async().await;

    assert_eq!(square(3), 9);
    assert!(square::invalidate_async(3).await);
    square::clear_async().await;

    assert_eq!(describe(1_u32), "1");
    assert!(!describe::invalidate_async(1_u64).await);
    assert!(describe::invalidate_async(1_u32).await);
    describe::clear_async().await;

    let user = User { id: 7 };
    assert_eq!(greeting(&user).await, "hello 7");
    assert!(greeting::invalidate_async(&user).await);
    greeting::clear_async().await;

    let shard = Shard(3);
    assert_eq!(shard.owner("k").await, "shard-3:k");
    assert!(shard.owner_invalidate_async("k").await);
    Shard::owner_clear_async().await;

    assert_eq!(shard.region("eu"), "region:eu");
    assert!(Shard::region_invalidate_async("eu").await);
    Shard::region_clear_async().await;
}
