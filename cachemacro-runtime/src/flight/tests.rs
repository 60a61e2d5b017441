//! The flight core with a plain map for a store, driven by blocking calls: the ordering
//! rules (re-check, invalidation, un-store) checked step by step, with hooks at the
//! points where another caller could interleave.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::blocking::complete_now;

#[derive(Default)]
struct MapStore {
    entries: Mutex<HashMap<u32, (u32, bool)>>,
    lookups: AtomicUsize,
    inserts: AtomicUsize,
    removals: AtomicUsize,
}

impl MapStore {
    fn value(&self, key: u32) -> Option<u32> {
        self.entries
            .lock()
            .unwrap()
            .get(&key)
            .map(|(value, _)| *value)
    }

    fn put(&self, key: u32, value: u32, fresh: bool) {
        self.entries.lock().unwrap().insert(key, (value, fresh));
    }
}

type Hook<'a> = Option<Box<dyn FnOnce() + 'a>>;

/// One blocking call for `key` whose computation returns `value`.
struct MapCall<'a> {
    store: &'a MapStore,
    key: u32,
    value: u32,
    /// The lookup finds a value it may not answer with: compute outside the flight.
    bypass: bool,
    /// Runs inside the first lookup, after the store was read.
    after_lookup: Hook<'a>,
    /// Runs inside the computation.
    while_computing: Hook<'a>,
    /// Runs inside the store call, after the insert landed.
    after_insert: Hook<'a>,
}

impl<'a> MapCall<'a> {
    fn new(store: &'a MapStore, key: u32, value: u32) -> Self {
        MapCall {
            store,
            key,
            value,
            bypass: false,
            after_lookup: None,
            while_computing: None,
            after_insert: None,
        }
    }
}

impl CacheCall<u32, u32> for MapCall<'_> {
    type Found = u32;
    type Output = (u32, Option<Hit>);
    type Computed = u32;
    type Write = u32;

    fn home_key(&self) -> &u32 {
        &self.key
    }

    fn flight_key(&self) -> &u32 {
        &self.key
    }

    async fn lookup(&mut self) -> Found<u32> {
        self.store.lookups.fetch_add(1, Ordering::SeqCst);
        let found = self.store.entries.lock().unwrap().get(&self.key).copied();
        if let Some(hook) = self.after_lookup.take() {
            hook();
        }
        match found {
            Some(_) if self.bypass => Found::Bypass,
            Some((value, true)) => Found::Fresh(value),
            Some((value, false)) => Found::Stale(value),
            None if self.bypass => Found::Bypass,
            None => Found::Missing,
        }
    }

    async fn wait(flight: &Flight<u32>) -> FlightOutcome<u32> {
        flight.wait()
    }

    fn accept(&self, shared: u32) -> Option<u32> {
        Some(shared)
    }

    fn answer(&mut self, found: u32, hit: Hit) -> (u32, Option<Hit>) {
        (found, Some(hit))
    }

    async fn compute(&mut self) -> Result<Computation<u32, u32, u32>, (u32, Option<Hit>)> {
        if let Some(hook) = self.while_computing.take() {
            hook();
        }
        Ok(Computation {
            result: self.value,
            share: Some(self.value),
            write: Some(self.value),
        })
    }

    fn finish(computed: u32) -> (u32, Option<Hit>) {
        (computed, None)
    }

    async fn store(&mut self, value: u32) {
        self.store.inserts.fetch_add(1, Ordering::SeqCst);
        self.store.put(self.key, value, true);
        if let Some(hook) = self.after_insert.take() {
            hook();
        }
    }

    async fn unstore(&mut self) {
        self.store.removals.fetch_add(1, Ordering::SeqCst);
        self.store.entries.lock().unwrap().remove(&self.key);
    }
}

fn run(core: &FlightCore<u32, u32>, call: MapCall<'_>) -> (u32, Option<Hit>) {
    complete_now(core.run(call))
}

/// What an invalidation does, with the store's removal in its place.
fn invalidate(core: &FlightCore<u32, u32>, store: &MapStore, key: u32) {
    core.invalidate(&key);
    store.entries.lock().unwrap().remove(&key);
}

#[test]
fn a_cold_miss_reads_the_store_once() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    assert_eq!(run(&core, MapCall::new(&store, 1, 10)), (10, None));
    assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(store.value(1), Some(10));
    assert_eq!(
        run(&core, MapCall::new(&store, 1, 99)),
        (10, Some(Hit::Fresh))
    );
    let stats = core.stats(StoreStats::default());
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

#[test]
fn a_leader_re_checks_when_another_flight_stored_since_its_lookup() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    let mut late = MapCall::new(&store, 1, 20);
    // Between this caller's miss and its joining, another caller misses, leads, stores.
    late.after_lookup = Some(Box::new(|| {
        assert_eq!(run(&core, MapCall::new(&store, 1, 10)), (10, None));
    }));
    assert_eq!(
        run(&core, late),
        (10, Some(Hit::Fresh)),
        "not computed twice"
    );
    assert_eq!(store.lookups.load(Ordering::SeqCst), 3);
}

#[test]
fn an_invalidation_during_the_computation_keeps_the_value_out_of_the_store() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    let mut call = MapCall::new(&store, 1, 1312);
    call.while_computing = Some(Box::new(|| invalidate(&core, &store, 1)));
    assert_eq!(
        run(&core, call),
        (1312, None),
        "its own caller still gets it"
    );
    assert_eq!(store.inserts.load(Ordering::SeqCst), 0);
    assert_eq!(store.value(1), None);
    assert_eq!(run(&core, MapCall::new(&store, 1, 2312)), (2312, None));
    assert_eq!(store.value(1), Some(2312));
}

#[test]
fn an_invalidation_that_removed_before_the_insert_landed_is_undone() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    let mut call = MapCall::new(&store, 1, 1312);
    // The invalidator marks the flight while the insert is in progress; its own removal
    // may already have run, so the leader must remove what it wrote.
    call.after_insert = Some(Box::new(|| core.invalidate(&1)));
    assert_eq!(run(&core, call), (1312, None));
    assert_eq!(store.removals.load(Ordering::SeqCst), 1);
    assert_eq!(store.value(1), None);
}

#[test]
fn a_clear_overtakes_every_running_computation() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    let mut call = MapCall::new(&store, 7, 1312);
    call.while_computing = Some(Box::new(|| core.invalidate_all()));
    assert_eq!(run(&core, call), (1312, None));
    assert_eq!(store.value(7), None);
}

#[test]
fn an_invalidation_of_another_key_does_not_stop_the_store() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    let mut call = MapCall::new(&store, 1, 10);
    call.while_computing = Some(Box::new(|| invalidate(&core, &store, 2)));
    run(&core, call);
    assert_eq!(store.value(1), Some(10));
}

#[test]
fn a_computation_outside_the_flight_is_overtaken_too() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    let mut call = MapCall::new(&store, 1, 1312);
    call.bypass = true;
    call.while_computing = Some(Box::new(|| invalidate(&core, &store, 1)));
    assert_eq!(run(&core, call), (1312, None));
    assert_eq!(store.value(1), None);

    let mut untouched = MapCall::new(&store, 1, 2312);
    untouched.bypass = true;
    run(&core, untouched);
    assert_eq!(store.value(1), Some(2312));
}

#[test]
fn a_stale_value_found_while_another_refreshes_counts_as_a_stale_hit() {
    let (core, store) = (FlightCore::new("test"), MapStore::default());
    store.put(1, 10, false);
    let mut refresh = MapCall::new(&store, 1, 11);
    refresh.while_computing = Some(Box::new(|| {
        assert_eq!(
            run(&core, MapCall::new(&store, 1, 99)),
            (10, Some(Hit::Stale))
        );
    }));
    assert_eq!(run(&core, refresh), (11, None));
    let stats = core.stats(StoreStats::default());
    assert_eq!((stats.hits, stats.stale, stats.misses), (1, 1, 1));
    assert_eq!(store.value(1), Some(11));
}
