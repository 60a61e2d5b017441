//! One computation per key at a time.
//!
//! The first caller to miss a key becomes its *leader* and runs the computation; callers
//! that miss the same key meanwhile become *followers* and wait for the leader's value.
//! Sync callers block on a condition variable, async callers await a [`Notify`]; both
//! share this one table. Different keys never wait on each other: the table is a sharded
//! [`DashMap`] and a follower only waits on its own key's flight.
//!
//! A leader that panics or whose future is dropped leaves through its [`LeaderGuard`]'s
//! `Drop`, which marks the flight abandoned and wakes the followers; one of them then
//! becomes the next leader, so a key can never stay stuck.
//!
//! An invalidation of a key marks its running flight and detaches it from the table: the
//! callers already in it still get its value, callers arriving later start a new flight,
//! and the leader, seeing the mark, does not store what it computed from older data.

use std::hash::Hash;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::Notify;

/// The in-flight computations of one cache, by key.
pub(crate) struct SingleFlight<K, V> {
    flights: DashMap<K, Arc<Flight<V>>>,
}

pub(crate) enum Role<'a, K: Hash + Eq, V> {
    /// This caller must compute the value and finish the guard.
    Leader(LeaderGuard<'a, K, V>),
    /// Another caller is computing; wait on this flight.
    Follower(Arc<Flight<V>>),
}

pub(crate) struct Flight<V> {
    state: Mutex<FlightState<V>>,
    finished_sync: Condvar,
    finished_async: Notify,
    /// Set when the key was invalidated while this flight ran. SeqCst, so that a leader
    /// reading it after its insert sees any invalidation whose store removal could have
    /// run before that insert.
    invalidated: AtomicBool,
}

enum FlightState<V> {
    Running,
    /// The leader produced a value that may be shared.
    Done(V),
    /// The leader panicked, was cancelled, or produced a value that must not be shared
    /// (for example an `Err` that is not cached): followers compute for themselves.
    Abandoned,
}

/// What a follower got when its flight ended.
pub(crate) enum FlightOutcome<V> {
    Shared(V),
    Retry,
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    pub(crate) fn new() -> Self {
        SingleFlight {
            flights: DashMap::new(),
        }
    }

    /// Joins the flight for `key`, starting it if there is none.
    pub(crate) fn join(&self, key: &K) -> Role<'_, K, V> {
        match self.flights.entry(key.clone()) {
            Entry::Occupied(running) => Role::Follower(Arc::clone(running.get())),
            Entry::Vacant(slot) => {
                let flight = Arc::new(Flight {
                    state: Mutex::new(FlightState::Running),
                    finished_sync: Condvar::new(),
                    finished_async: Notify::new(),
                    invalidated: AtomicBool::new(false),
                });
                slot.insert(Arc::clone(&flight));
                Role::Leader(LeaderGuard {
                    table: self,
                    key: key.clone(),
                    flight,
                    finished: false,
                })
            }
        }
    }

    /// Marks the running flight of `key`, if any, as invalidated and detaches it.
    pub(crate) fn invalidate(&self, key: &K) {
        self.flights.remove_if(key, |_, flight| {
            flight.invalidate();
            true
        });
    }

    /// Marks and detaches every running flight whose key `matches`.
    pub(crate) fn invalidate_where(&self, mut matches: impl FnMut(&K) -> bool) {
        self.flights.retain(|key, flight| {
            if matches(key) {
                flight.invalidate();
                false
            } else {
                true
            }
        });
    }
}

/// Held by the leader while it computes; ends the flight exactly once.
pub(crate) struct LeaderGuard<'a, K: Hash + Eq, V> {
    table: &'a SingleFlight<K, V>,
    key: K,
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<K: Hash + Eq, V> LeaderGuard<'_, K, V> {
    /// Whether the key was invalidated since this flight started: its value must not be
    /// stored.
    pub(crate) fn is_invalidated(&self) -> bool {
        self.flight.invalidated.load(Ordering::SeqCst)
    }

    /// Hands `value` to every follower.
    pub(crate) fn share(mut self, value: V) {
        self.finish(FlightState::Done(value));
    }

    fn finish(&mut self, outcome: FlightState<V>) {
        self.finished = true;
        // Leave the table before waking followers, so that a woken follower that must
        // retry starts a new flight instead of finding this finished one.
        self.table
            .flights
            .remove_if(&self.key, |_, flight| Arc::ptr_eq(flight, &self.flight));
        *self.flight.lock() = outcome;
        self.flight.finished_sync.notify_all();
        self.flight.finished_async.notify_waiters();
    }
}

impl<K: Hash + Eq, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(FlightState::Abandoned);
        }
    }
}

impl<V> Flight<V> {
    fn invalidate(&self) {
        self.invalidated.store(true, Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, FlightState<V>> {
        // The lock is never held across user code, so poisoning cannot leave the state
        // half-written; recover the guard rather than propagating someone else's panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<V: Clone> Flight<V> {
    fn outcome(state: &FlightState<V>) -> Option<FlightOutcome<V>> {
        match state {
            FlightState::Running => None,
            FlightState::Done(value) => Some(FlightOutcome::Shared(value.clone())),
            FlightState::Abandoned => Some(FlightOutcome::Retry),
        }
    }

    /// Blocks the current thread until the leader finishes.
    pub(crate) fn wait(&self) -> FlightOutcome<V> {
        let mut state = self.lock();
        loop {
            if let Some(outcome) = Self::outcome(&state) {
                return outcome;
            }
            state = self
                .finished_sync
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Waits, without blocking the executor, until the leader finishes.
    pub(crate) async fn wait_async(&self) -> FlightOutcome<V> {
        loop {
            let mut notified = pin!(self.finished_async.notified());
            // Register before reading the state: a leader finishing between the read and
            // the await would otherwise wake nobody.
            notified.as_mut().enable();
            if let Some(outcome) = Self::outcome(&self.lock()) {
                return outcome;
            }
            notified.await;
        }
    }
}
