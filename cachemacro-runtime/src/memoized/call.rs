//! One call of a memoized function, as the flight core drives it, and the two ways a
//! caller waits: blocking its thread or yielding to the executor.

use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use super::value_policy::ValuePolicy;
use super::Memoized;
use crate::flight::single_flight::{Flight, FlightOutcome};
use crate::flight::{CacheCall, Computation, Found, Hit};
use crate::store::{Store, StoreError};

/// How a caller reaches the store and waits for a flight. The only difference between
/// a memoized `fn` and a memoized `async fn`.
pub(crate) trait Waiting {
    async fn get<K, V: Send, S: Store<K, V>>(store: &S, key: &K) -> Result<Option<V>, StoreError>;
    async fn insert<K, V, S: Store<K, V>>(
        store: &S,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    async fn remove<K, V, S: Store<K, V>>(store: &S, key: &K) -> Result<bool, StoreError>;
    async fn clear<K, V, S: Store<K, V>>(store: &S) -> Result<(), StoreError>;
    async fn wait<V: Clone>(flight: &Flight<V>) -> FlightOutcome<V>;
}

/// A synchronous caller: every step blocks its thread, so its flight completes in one
/// poll (see `blocking::complete_now`).
pub(crate) struct Blocking;

/// An async caller: store calls and waits yield to the executor.
pub(crate) struct Yielding;

impl Waiting for Blocking {
    async fn get<K, V: Send, S: Store<K, V>>(store: &S, key: &K) -> Result<Option<V>, StoreError> {
        store.get(key)
    }

    async fn insert<K, V, S: Store<K, V>>(
        store: &S,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        store.insert(key, value, ttl)
    }

    async fn remove<K, V, S: Store<K, V>>(store: &S, key: &K) -> Result<bool, StoreError> {
        store.remove(key)
    }

    async fn clear<K, V, S: Store<K, V>>(store: &S) -> Result<(), StoreError> {
        store.clear()
    }

    async fn wait<V: Clone>(flight: &Flight<V>) -> FlightOutcome<V> {
        flight.wait()
    }
}

impl Waiting for Yielding {
    async fn get<K, V: Send, S: Store<K, V>>(store: &S, key: &K) -> Result<Option<V>, StoreError> {
        store.get_async(key).await
    }

    async fn insert<K, V, S: Store<K, V>>(
        store: &S,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        store.insert_async(key, value, ttl).await
    }

    async fn remove<K, V, S: Store<K, V>>(store: &S, key: &K) -> Result<bool, StoreError> {
        store.remove_async(key).await
    }

    async fn clear<K, V, S: Store<K, V>>(store: &S) -> Result<(), StoreError> {
        store.clear_async().await
    }

    async fn wait<V: Clone>(flight: &Flight<V>) -> FlightOutcome<V> {
        flight.wait_async().await
    }
}

/// A call of a memoized function for `key`; `compute` is its body (a blocking body is
/// wrapped in a future that completes when first polled).
pub(crate) struct MemoizedCall<'a, K, V, S, P, C, W> {
    pub(crate) cache: &'a Memoized<K, V, S>,
    pub(crate) key: K,
    pub(crate) compute: Option<C>,
    pub(crate) policy: &'a P,
    pub(crate) waiting: PhantomData<W>,
}

impl<K, V, S, P, C, W, R> CacheCall<K, V> for MemoizedCall<'_, K, V, S, P, C, W>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
    P: ValuePolicy<R, V>,
    C: Future<Output = R>,
    W: Waiting,
{
    type Found = V;
    type Output = R;
    type Computed = R;
    type Write = V;

    fn home_key(&self) -> &K {
        &self.key
    }

    fn flight_key(&self) -> &K {
        &self.key
    }

    async fn lookup(&mut self) -> Found<V> {
        match W::get(&self.cache.store, &self.key).await {
            Ok(Some(value)) if self.policy.is_fresh(&value) => Found::Fresh(value),
            Ok(Some(value)) => Found::Stale(value),
            Ok(None) => Found::Missing,
            Err(error) => {
                self.cache.core.fault("get", &error);
                Found::Faulted
            }
        }
    }

    async fn wait(flight: &Flight<V>) -> FlightOutcome<V> {
        W::wait(flight).await
    }

    fn accept(&self, shared: V) -> Option<V> {
        Some(shared)
    }

    fn answer(&mut self, value: V, _hit: Hit) -> R {
        self.policy.restore(value)
    }

    async fn compute(&mut self) -> Result<Computation<R, V, V>, R> {
        let compute = self.compute.take().expect("a call computes once");
        let result = compute.await;
        // A result that must not be cached (an `Err`) is not shared either: the
        // followers compute their own.
        let value = self.policy.storable(&result);
        Ok(Computation {
            result,
            share: value.clone(),
            write: value,
        })
    }

    fn finish(result: R) -> R {
        result
    }

    async fn store(&mut self, value: V) {
        let stored = W::insert(&self.cache.store, self.key.clone(), value, self.cache.ttl).await;
        self.cache.core.record_insert(stored);
    }

    async fn unstore(&mut self) {
        if let Err(error) = W::remove(&self.cache.store, &self.key).await {
            self.cache.core.fault("remove", &error);
        }
    }
}
