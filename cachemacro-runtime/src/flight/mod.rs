//! The flight core: the one algorithm behind `#[memoize]` and the page cache.
//!
//! A call looks its key up; a fresh value is a hit. Otherwise it joins the key's flight
//! ([`single_flight`]): a follower waits for the leader's value, or, if the value it finds
//! is stale, takes it at once while the leader refreshes it (stale-while-revalidate). The
//! leader re-checks the store only if another flight stored a key of its stripe meanwhile
//! ([`write_epochs`]) or its lookup failed, computes, stores unless an invalidation overtook it, and shares the
//! value with its followers. Statistics are counted here and nowhere else.
//!
//! What differs between caches is plugged in through [`CacheCall`]: how a key is looked
//! up (one store read for a memoized function; base key, variant index and variant key
//! for a page), whether a shared value answers this caller, how the value is computed and
//! written. Blocking and async callers run the same future; a blocking one completes in a
//! single poll ([`complete_now`](crate::blocking::complete_now)).

pub(crate) mod single_flight;
mod write_epochs;

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use self::single_flight::{Flight, FlightOutcome, LeaderGuard, Role, SingleFlight};
use self::write_epochs::{Stripe, WriteEpochs};
use crate::stats::{CacheStats, StatsCounters};
use crate::store::{StoreError, StoreStats};

/// What a lookup found for the caller.
pub(crate) enum Found<F> {
    /// Serve it: a hit.
    Fresh(F),
    /// Past its freshness but within its stale window: served to callers that find
    /// another refreshing it; the caller that leads refreshes it.
    Stale(F),
    /// Nothing usable: join the key's flight.
    Missing,
    /// The store failed (the fault is already reported): as `Missing`, but the lookup
    /// said nothing about the key, so a leader reads it once more before computing.
    Faulted,
    /// A value exists but may not answer this caller (a page for another variant, or one
    /// that may not answer an authorized request): compute without the flight, whose
    /// value would not answer this caller either. Only pages have such values.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Bypass,
}

/// How a value that was not computed by the caller reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hit {
    Fresh,
    Stale,
    /// Shared by the leader of the flight the caller waited on.
    Coalesced,
}

/// What a computation produced.
pub(crate) struct Computation<T, V, W> {
    /// Returned to the caller that computed (see [`CacheCall::finish`]).
    pub(crate) result: T,
    /// Handed to the flight's followers; `None` sends them to compute for themselves.
    pub(crate) share: Option<V>,
    /// Written to the store, unless an invalidation overtook the computation.
    pub(crate) write: Option<W>,
}

/// One call to a cache, as the flight core drives it: the cache-specific steps.
///
/// The async methods of a blocking call block and complete without yielding.
pub(crate) trait CacheCall<K, V> {
    /// What a lookup or a shared value gives this caller.
    type Found;
    /// What the call returns.
    type Output;
    /// What a completed computation gives the caller that ran it. Apart from `Output` so
    /// that a failure's type (a handler's error, which need not be `Send`) is never held
    /// across the core's awaits.
    type Computed;
    /// What a computation writes to the store.
    type Write;

    /// The key whose stripe of write epochs this call watches (for a page, the base key
    /// that all its variants share).
    fn home_key(&self) -> &K;
    /// The key whose flight this call joins; [`lookup`](CacheCall::lookup) may change it.
    fn flight_key(&self) -> &K;
    async fn lookup(&mut self) -> Found<Self::Found>;
    /// Waits for another caller's flight. Not a method: a call holds its request, which
    /// need not be `Sync`, and a future holding `&self` across the wait would not be `Send`.
    async fn wait(flight: &Flight<V>) -> FlightOutcome<V>;
    /// The shared value, if it answers this caller.
    fn accept(&self, shared: V) -> Option<Self::Found>;
    fn answer(&mut self, found: Self::Found, hit: Hit) -> Self::Output;
    /// Runs the computation; called at most once per call. `Err` is a failure, returned
    /// to this caller as it is, with nothing shared or stored.
    async fn compute(
        &mut self,
    ) -> Result<Computation<Self::Computed, V, Self::Write>, Self::Output>;
    fn finish(computed: Self::Computed) -> Self::Output;
    async fn store(&mut self, write: Self::Write);
    /// Removes what [`store`](CacheCall::store) wrote: an invalidation ran while it did.
    async fn unstore(&mut self);
}

/// The flights, write epochs and counters of one cache.
pub(crate) struct FlightCore<K, V> {
    /// The cache's name, for logs.
    name: &'static str,
    flights: SingleFlight<K, V>,
    epochs: WriteEpochs,
    /// Invalidations so far, for computations that run outside any flight (and so carry
    /// no mark): one that sees this move while it computed does not store.
    invalidations: AtomicU64,
    counters: StatsCounters,
}

impl<K: Hash + Eq + Clone, V: Clone> FlightCore<K, V> {
    pub(crate) fn new(name: &'static str) -> Self {
        FlightCore {
            name,
            flights: SingleFlight::new(),
            epochs: WriteEpochs::new(),
            invalidations: AtomicU64::new(0),
            counters: StatsCounters::default(),
        }
    }

    /// Answers `call`: from the store, from a concurrent caller's computation, or by
    /// computing (at most one caller per flight key at a time).
    pub(crate) async fn run<C: CacheCall<K, V>>(&self, mut call: C) -> C::Output {
        let stripe = self.epochs.stripe(call.home_key());
        loop {
            let seen = self.epochs.read(stripe);
            let found = call.lookup().await;
            let faulted = matches!(found, Found::Faulted);
            let guard = match found {
                Found::Fresh(found) => return self.hit(&mut call, found, Hit::Fresh),
                Found::Stale(found) => match self.flights.join(call.flight_key()) {
                    Role::Follower(_) => return self.hit(&mut call, found, Hit::Stale),
                    Role::Leader(guard) => guard,
                },
                Found::Missing | Found::Faulted => match self.flights.join(call.flight_key()) {
                    Role::Follower(flight) => match C::wait(&flight).await {
                        FlightOutcome::Shared(value) => match call.accept(value) {
                            Some(found) => return self.hit(&mut call, found, Hit::Coalesced),
                            None => return self.compute_outside(&mut call, stripe).await,
                        },
                        FlightOutcome::Retry => continue,
                    },
                    Role::Leader(guard) => {
                        // A flight that finished between our lookup and our joining may
                        // have stored the value; if so, its stripe moved. After a fault,
                        // one more read lets a transient failure still end in a hit (a
                        // store that is down fails fast).
                        if faulted || self.epochs.read(stripe) != seen {
                            if let Found::Fresh(found) = call.lookup().await {
                                return self.hit(&mut call, found, Hit::Fresh);
                            }
                        }
                        guard
                    }
                },
                Found::Bypass => return self.compute_outside(&mut call, stripe).await,
            };
            return self.lead(&mut call, guard, stripe).await;
        }
    }

    fn hit<C: CacheCall<K, V>>(&self, call: &mut C, found: C::Found, hit: Hit) -> C::Output {
        match hit {
            Hit::Fresh => self.counters.hit(),
            Hit::Stale => self.counters.stale(),
            Hit::Coalesced => self.counters.coalesced(),
        }
        call.answer(found, hit)
    }

    async fn lead<C: CacheCall<K, V>>(
        &self,
        call: &mut C,
        guard: LeaderGuard<'_, K, V>,
        stripe: Stripe,
    ) -> C::Output {
        self.counters.miss();
        // Dropping the guard without sharing abandons the flight: the followers retry.
        let computed = match call.compute().await {
            Ok(computed) => computed,
            Err(failed) => return failed,
        };
        if let Some(write) = computed.write {
            self.settle(call, write, stripe, || guard.is_invalidated())
                .await;
        }
        if let Some(value) = computed.share {
            guard.share(value);
        }
        C::finish(computed.result)
    }

    /// Computes for a caller that no flight can serve; stores under the same rule as a
    /// leader, with the cache's invalidation count standing in for a flight's mark.
    async fn compute_outside<C: CacheCall<K, V>>(&self, call: &mut C, stripe: Stripe) -> C::Output {
        let invalidations = self.invalidations.load(Ordering::SeqCst);
        self.counters.miss();
        let computed = match call.compute().await {
            Ok(computed) => computed,
            Err(failed) => return failed,
        };
        if let Some(write) = computed.write {
            self.settle(call, write, stripe, || {
                self.invalidations.load(Ordering::SeqCst) != invalidations
            })
            .await;
        }
        C::finish(computed.result)
    }

    /// Stores a computed value unless an invalidation overtook its computation.
    ///
    /// An invalidation marks first and removes from the store second, and no lock is held
    /// across the store call: a mark seen before the insert skips it; a mark that appears
    /// during the insert may belong to an invalidation whose removal ran before the
    /// insert landed, so the insert is undone. At worst a fresh value is dropped (a later
    /// miss), never an old one kept.
    async fn settle<C: CacheCall<K, V>>(
        &self,
        call: &mut C,
        write: C::Write,
        stripe: Stripe,
        invalidated: impl Fn() -> bool,
    ) {
        if invalidated() {
            return;
        }
        call.store(write).await;
        self.epochs.advance(stripe);
        if invalidated() {
            call.unstore().await;
        }
    }

    /// Overtakes the computation in flight for `key`, if any. Call before removing the
    /// key from the store.
    pub(crate) fn invalidate(&self, key: &K) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.flights.invalidate(key);
    }

    /// Overtakes every computation in flight for a key that `matches`. Call before
    /// removing those keys from the store.
    pub(crate) fn invalidate_where(&self, matches: impl FnMut(&K) -> bool) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.flights.invalidate_where(matches);
    }

    /// Overtakes every computation in flight. Call before clearing the store.
    pub(crate) fn invalidate_all(&self) {
        self.invalidate_where(|_| true);
    }
}

impl<K, V> FlightCore<K, V> {
    /// A hit found outside [`run`](FlightCore::run) (a borrowed-key lookup).
    pub(crate) fn count_hit(&self) {
        self.counters.hit();
    }

    /// A miss that a conditional request settled without a computation (a page
    /// confirmed by `304 Not Modified`).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn count_revalidation(&self) {
        self.counters.revalidated();
    }

    /// A stale value that answered in place of a failed computation.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn count_stale_on_error(&self) {
        self.counters.stale();
    }

    /// Counts a completed insert, or reports its fault.
    pub(crate) fn record_insert(&self, stored: Result<(), StoreError>) {
        match stored {
            Ok(()) => self.counters.insert(),
            Err(error) => self.fault("insert", &error),
        }
    }

    /// A cache is never the source of truth: a fault is counted and logged, and the
    /// caller carries on as if the cache had missed.
    pub(crate) fn fault(&self, operation: &'static str, error: &StoreError) {
        self.counters.error();
        tracing::warn!(cache = self.name, operation, %error, "cache store fault; computing instead");
    }

    /// The counters, with the store's own.
    pub(crate) fn stats(&self, store: StoreStats) -> CacheStats {
        self.counters.snapshot(store)
    }
}

#[cfg(test)]
mod tests;
