//! The cache of one memoized function: store lookup, single-flight, value policy, stats.
//!
//! Sync and async memoized functions run the same steps; only the waiting differs, so the
//! steps live in small shared methods and the two entry points differ only in `.await`.

use std::any::Any;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use crate::single_flight::{FlightOutcome, Role, SingleFlight};
use crate::slot::ErasedCache;
use crate::stats::StatsCounters;
use crate::{CacheStats, KeyRef, Store, StoreError};

/// How a function's return value `R` maps to the value `V` kept in the store.
///
/// For a function returning `Result<T, E>` the macro stores `T` and rebuilds `Ok(T)` on a
/// hit, so `Err` values are neither stored nor shared; `cache_if` adds a filter.
pub trait ValuePolicy<R, V> {
    /// The value to store and share, or `None` if this result must not be cached.
    fn storable(&self, result: &R) -> Option<V>;
    /// Rebuilds the function's return value from a stored value.
    fn restore(&self, value: V) -> R;
}

/// A [`ValuePolicy`] from two closures; what the generated code builds.
pub struct PolicyFns<ToCached, FromCached>(pub ToCached, pub FromCached);

impl<R, V, ToCached, FromCached> ValuePolicy<R, V> for PolicyFns<ToCached, FromCached>
where
    ToCached: Fn(&R) -> Option<V>,
    FromCached: Fn(V) -> R,
{
    fn storable(&self, result: &R) -> Option<V> {
        (self.0)(result)
    }

    fn restore(&self, value: V) -> R {
        (self.1)(value)
    }
}

/// The cache behind one memoized function.
pub struct Memoized<K, V, S> {
    name: &'static str,
    store: S,
    ttl: Option<Duration>,
    flights: SingleFlight<K, V>,
    counters: StatsCounters,
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
            name,
            store: store.with_namespace(name),
            ttl,
            flights: SingleFlight::new(),
            counters: StatsCounters::default(),
        }
    }

    /// The hit path: `key` borrowed from the arguments, looked up without building the
    /// owned key. `None` (a miss, or a store without a borrowed lookup) sends the caller
    /// to [`get_or_compute`](Self::get_or_compute).
    pub fn lookup_borrowed<Q>(&self, key: &Q) -> Option<V>
    where
        Q: KeyRef<Key = K> + ?Sized,
    {
        let value = self.store.get_borrowed(key)?;
        self.counters.hit();
        Some(value)
    }

    /// The value for `key`: from the store, from a concurrent caller's computation, or by
    /// running `compute` (at most one caller per key runs it at a time).
    pub fn get_or_compute<R>(
        &self,
        key: K,
        compute: impl FnOnce() -> R,
        policy: &impl ValuePolicy<R, V>,
    ) -> R {
        loop {
            if let Some(value) = self.lookup(self.store.get(&key)) {
                return policy.restore(value);
            }
            match self.flights.join(&key) {
                Role::Follower(flight) => match flight.wait() {
                    FlightOutcome::Shared(value) => {
                        self.counters.coalesced();
                        return policy.restore(value);
                    }
                    FlightOutcome::Retry => continue,
                },
                Role::Leader(guard) => {
                    // A previous leader may have stored the value between our lookup and
                    // our joining; dropping the guard lets any followers retry and hit.
                    if let Some(value) = self.lookup(self.store.get(&key)) {
                        return policy.restore(value);
                    }
                    self.counters.miss();
                    let result = compute();
                    if let Some(value) = policy.storable(&result) {
                        let stored = self.store.insert(key, value.clone(), self.ttl);
                        self.record_insert(stored);
                        guard.share(value);
                    }
                    return result;
                }
            }
        }
    }

    /// The async form of [`get_or_compute`](Self::get_or_compute): waiting followers
    /// yield to the executor, and a cancelled leader hands the key to the next caller.
    pub async fn get_or_compute_async<R>(
        &self,
        key: K,
        compute: impl Future<Output = R>,
        policy: &impl ValuePolicy<R, V>,
    ) -> R {
        loop {
            if let Some(value) = self.lookup(self.store.get_async(&key).await) {
                return policy.restore(value);
            }
            match self.flights.join(&key) {
                Role::Follower(flight) => match flight.wait_async().await {
                    FlightOutcome::Shared(value) => {
                        self.counters.coalesced();
                        return policy.restore(value);
                    }
                    FlightOutcome::Retry => continue,
                },
                Role::Leader(guard) => {
                    if let Some(value) = self.lookup(self.store.get_async(&key).await) {
                        return policy.restore(value);
                    }
                    self.counters.miss();
                    let result = compute.await;
                    if let Some(value) = policy.storable(&result) {
                        let stored = self.store.insert_async(key, value.clone(), self.ttl).await;
                        self.record_insert(stored);
                        guard.share(value);
                    }
                    return result;
                }
            }
        }
    }

    /// Removes `key`'s entry; returns whether it existed.
    pub fn invalidate(&self, key: &K) -> bool {
        match self.store.remove(key) {
            Ok(existed) => existed,
            Err(error) => {
                self.fault("invalidate", &error);
                false
            }
        }
    }

    /// The store behind this cache.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn lookup(&self, found: Result<Option<V>, StoreError>) -> Option<V> {
        match found {
            Ok(Some(value)) => {
                self.counters.hit();
                Some(value)
            }
            Ok(None) => None,
            Err(error) => {
                self.fault("get", &error);
                None
            }
        }
    }

    fn record_insert(&self, stored: Result<(), StoreError>) {
        match stored {
            Ok(()) => self.counters.insert(),
            Err(error) => self.fault("insert", &error),
        }
    }

    /// A cache is never the source of truth: a fault is counted and logged, and the
    /// caller carries on as if the cache had missed.
    fn fault(&self, operation: &'static str, error: &StoreError) {
        self.counters.error();
        tracing::warn!(cache = self.name, operation, %error, "cache store fault; computing instead");
    }
}

impl<K, V, S> ErasedCache for Memoized<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V> + 'static,
{
    fn clear(&self) {
        if let Err(error) = self.store.clear() {
            self.fault("clear", &error);
        }
    }

    fn stats(&self) -> CacheStats {
        self.counters.snapshot(self.store.stats())
    }

    fn invalidate(&self, key: &dyn Any) -> bool {
        key.downcast_ref::<K>()
            .is_some_and(|key| Memoized::invalidate(self, key))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
