//! The cache of one memoized function: its store, its value policy, and the flight core
//! that runs lookup, single-flight, stale-while-revalidate and the statistics.
//!
//! Sync and async memoized functions run the same flight ([`call`]); they differ only in
//! how they reach the store and wait.

mod call;
mod value_policy;

use std::any::Any;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use self::call::{Blocking, MemoizedCall, Waiting, Yielding};
pub use self::value_policy::{PolicyFns, StalePolicy, Stamped, ValuePolicy};
use crate::blocking::complete_now;
use crate::flight::FlightCore;
use crate::key::KeyRef;
use crate::slot::ErasedCache;
use crate::stats::CacheStats;
use crate::store::Store;

/// The cache behind one memoized function.
pub struct Memoized<K, V, S> {
    store: S,
    ttl: Option<Duration>,
    core: FlightCore<K, V>,
}

impl<K, V, S> Memoized<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    /// A cache named `name` (for logs) over `store`; `ttl` is passed with every insert.
    pub fn new(name: &'static str, store: S, ttl: Option<Duration>) -> Self {
        Memoized {
            store: store.with_namespace(name),
            ttl,
            core: FlightCore::new(name),
        }
    }

    /// The hit path: `key` borrowed from the arguments, looked up without building the
    /// owned key. `None` (a miss, a stale value, or a store without a borrowed lookup)
    /// sends the caller to [`get_or_compute`](Self::get_or_compute).
    pub fn lookup_borrowed<Q, R>(&self, key: &Q, policy: &impl ValuePolicy<R, V>) -> Option<R>
    where
        Q: KeyRef<Key = K> + ?Sized,
    {
        let value = self.store.get_borrowed(key)?;
        if !policy.is_fresh(&value) {
            return None;
        }
        self.core.count_hit();
        Some(policy.restore(value))
    }

    /// The value for `key`: from the store, from a concurrent caller's computation, or by
    /// running `compute` (at most one caller per key runs it at a time).
    pub fn get_or_compute<R>(
        &self,
        key: K,
        compute: impl FnOnce() -> R,
        policy: &impl ValuePolicy<R, V>,
    ) -> R {
        complete_now(self.core.run(MemoizedCall {
            cache: self,
            key,
            compute: Some(async move { compute() }),
            policy,
            waiting: PhantomData::<Blocking>,
        }))
    }

    /// The async form of [`get_or_compute`](Self::get_or_compute): waiting followers
    /// yield to the executor, and a cancelled leader hands the key to the next caller.
    pub async fn get_or_compute_async<R>(
        &self,
        key: K,
        compute: impl Future<Output = R>,
        policy: &impl ValuePolicy<R, V>,
    ) -> R {
        self.core
            .run(MemoizedCall {
                cache: self,
                key,
                compute: Some(compute),
                policy,
                waiting: PhantomData::<Yielding>,
            })
            .await
    }

    /// Removes `key`'s entry; returns whether it existed. A computation of `key` already
    /// running returns its value to its callers but does not store it: it may have read
    /// the data this invalidation is about before it changed.
    pub fn invalidate(&self, key: &K) -> bool {
        complete_now(self.invalidate_with::<Blocking>(key))
    }

    /// [`invalidate`](Self::invalidate) through the store's async removal.
    pub async fn invalidate_async(&self, key: &K) -> bool {
        self.invalidate_with::<Yielding>(key).await
    }

    /// Removes every entry; computations running meanwhile do not store their values.
    pub fn clear(&self) {
        complete_now(self.clear_with::<Blocking>());
    }

    /// [`clear`](Self::clear) through the store's async clear.
    pub async fn clear_async(&self) {
        self.clear_with::<Yielding>().await;
    }

    async fn invalidate_with<W: Waiting>(&self, key: &K) -> bool {
        // Overtake the running computation first, then remove: see `FlightCore::settle`.
        self.core.invalidate(key);
        match W::remove(&self.store, key).await {
            Ok(existed) => existed,
            Err(error) => {
                self.core.fault("invalidate", &error);
                false
            }
        }
    }

    async fn clear_with<W: Waiting>(&self) {
        self.core.invalidate_all();
        if let Err(error) = W::clear(&self.store).await {
            self.core.fault("clear", &error);
        }
    }

    /// The store behind this cache.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A snapshot of the counters, with the store's own.
    pub fn stats(&self) -> CacheStats {
        self.core.stats(self.store.stats())
    }
}

impl<K, V, S> ErasedCache for Memoized<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V> + 'static,
{
    fn clear(&self) {
        Memoized::clear(self);
    }

    fn clear_async(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Memoized::clear_async(self))
    }

    fn stats(&self) -> CacheStats {
        Memoized::stats(self)
    }

    fn invalidate(&self, key: &dyn Any) -> bool {
        key.downcast_ref::<K>()
            .is_some_and(|key| Memoized::invalidate(self, key))
    }

    fn invalidate_async<'a>(
        &'a self,
        key: &'a dyn Any,
    ) -> Option<Pin<Box<dyn Future<Output = bool> + Send + 'a>>> {
        let key = key.downcast_ref::<K>()?;
        Some(Box::pin(Memoized::invalidate_async(self, key)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
