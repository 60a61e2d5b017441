//! The cache of one memoized function: store lookup, single-flight, value policy, stats.
//!
//! Sync and async memoized functions run the same steps; only the waiting differs, so the
//! steps live in small shared methods and the two entry points differ only in `.await`.

use std::any::Any;
use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::single_flight::{FlightOutcome, Role, SingleFlight};
use crate::slot::ErasedCache;
use crate::stats::StatsCounters;
use crate::{CacheStats, KeyRef, Store, StoreError};

/// How a function's return value `R` maps to the value `V` kept in the store.
///
/// For a function returning `Result<T, E>` the macro stores `T` and rebuilds `Ok(T)` on a
/// hit, so `Err` values are neither stored nor shared; `cache_if` adds a filter; `stale`
/// wraps the value in a [`Stamped`] through [`StalePolicy`].
pub trait ValuePolicy<R, V> {
    /// The value to store and share, or `None` if this result must not be cached.
    fn storable(&self, result: &R) -> Option<V>;
    /// Rebuilds the function's return value from a stored value.
    fn restore(&self, value: V) -> R;
    /// Whether a stored value may be served as it is. A stale one (past its ttl but
    /// within its stale window) is served to concurrent callers while one refreshes it.
    fn is_fresh(&self, value: &V) -> bool {
        let _ = value;
        true
    }
}

/// A [`ValuePolicy`] from two closures; what the generated code builds.
pub struct PolicyFns<ToStore, Restore>(pub ToStore, pub Restore);

impl<R, V, ToStore, Restore> ValuePolicy<R, V> for PolicyFns<ToStore, Restore>
where
    ToStore: Fn(&R) -> Option<V>,
    Restore: Fn(V) -> R,
{
    fn storable(&self, result: &R) -> Option<V> {
        (self.0)(result)
    }

    fn restore(&self, value: V) -> R {
        (self.1)(value)
    }
}

/// A stored value with the wall-clock time until which it is fresh; what
/// `#[memoize(stale = "..")]` stores. Wall-clock milliseconds, so that every process
/// sharing a remote store agrees.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stamped<V> {
    /// The cached value.
    pub value: V,
    /// Milliseconds since the Unix epoch until which `value` is fresh.
    pub fresh_until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Stale-while-revalidate around another policy: values are stamped with `ttl`; the
/// store keeps them for `ttl + stale`, and in between they are stale.
pub struct StalePolicy<P> {
    inner: P,
    ttl: Duration,
}

impl<P> StalePolicy<P> {
    /// Stamps what `inner` stores as fresh for `ttl`.
    pub fn new(inner: P, ttl: Duration) -> Self {
        StalePolicy { inner, ttl }
    }
}

impl<R, V, P: ValuePolicy<R, V>> ValuePolicy<R, Stamped<V>> for StalePolicy<P> {
    fn storable(&self, result: &R) -> Option<Stamped<V>> {
        self.inner.storable(result).map(|value| Stamped {
            value,
            fresh_until_ms: now_ms().saturating_add(self.ttl.as_millis() as u64),
        })
    }

    fn restore(&self, stamped: Stamped<V>) -> R {
        self.inner.restore(stamped.value)
    }

    fn is_fresh(&self, stamped: &Stamped<V>) -> bool {
        now_ms() < stamped.fresh_until_ms
    }
}

/// What a lookup found, before single-flight decides who computes.
enum Found<V> {
    Fresh(V),
    Stale(V),
    Nothing,
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
        self.counters.hit();
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
        loop {
            let found = self.classify(self.store.get(&key), policy);
            let role = match self.serve_or_join(found, &key, policy) {
                Ok(served) => return served,
                Err(role) => role,
            };
            match role {
                Role::Follower(flight) => match flight.wait() {
                    FlightOutcome::Shared(value) => return self.shared(value, policy),
                    FlightOutcome::Retry => continue,
                },
                Role::Leader(guard) => {
                    // A previous leader may have stored the value between our lookup and
                    // our joining; dropping the guard lets any followers retry and hit.
                    if let Found::Fresh(value) = self.classify(self.store.get(&key), policy) {
                        return self.hit(value, policy);
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
            let found = self.classify(self.store.get_async(&key).await, policy);
            let role = match self.serve_or_join(found, &key, policy) {
                Ok(served) => return served,
                Err(role) => role,
            };
            match role {
                Role::Follower(flight) => match flight.wait_async().await {
                    FlightOutcome::Shared(value) => return self.shared(value, policy),
                    FlightOutcome::Retry => continue,
                },
                Role::Leader(guard) => {
                    if let Found::Fresh(value) =
                        self.classify(self.store.get_async(&key).await, policy)
                    {
                        return self.hit(value, policy);
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

    /// The steps shared by sync and async callers after a lookup: a fresh value is a
    /// hit; otherwise the caller joins the key's flight. A stale value is served at once
    /// to a caller that finds another refreshing it, while the one that leads refreshes.
    fn serve_or_join<'a, R>(
        &'a self,
        found: Found<V>,
        key: &K,
        policy: &impl ValuePolicy<R, V>,
    ) -> Result<R, Role<'a, K, V>> {
        match found {
            Found::Fresh(value) => Ok(self.hit(value, policy)),
            Found::Stale(value) => match self.flights.join(key) {
                Role::Follower(_) => {
                    self.counters.stale();
                    Ok(self.hit(value, policy))
                }
                leader => Err(leader),
            },
            Found::Nothing => Err(self.flights.join(key)),
        }
    }

    fn hit<R>(&self, value: V, policy: &impl ValuePolicy<R, V>) -> R {
        self.counters.hit();
        policy.restore(value)
    }

    fn shared<R>(&self, value: V, policy: &impl ValuePolicy<R, V>) -> R {
        self.counters.coalesced();
        policy.restore(value)
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

    fn classify<R>(
        &self,
        found: Result<Option<V>, StoreError>,
        policy: &impl ValuePolicy<R, V>,
    ) -> Found<V> {
        match found {
            Ok(Some(value)) if policy.is_fresh(&value) => Found::Fresh(value),
            Ok(Some(value)) => Found::Stale(value),
            Ok(None) => Found::Nothing,
            Err(error) => {
                self.fault("get", &error);
                Found::Nothing
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
