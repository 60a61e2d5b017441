//! One shard: an independent S3-FIFO cache over a slab of entries, a hash table of their
//! indices and a ghost table of recently evicted hashes.

use std::sync::atomic::Ordering::Relaxed;

use hashbrown::HashTable;

use super::removal::{RemovalCause, Removed};
use super::slab::{Queue, Slab, Slot, Times, NIL};

/// How many of the oldest entries each insert checks for expiry. Small and constant so a
/// write never pays for a large backlog; steady writes still drain expired entries faster
/// than they can pile up, since each insert adds one entry and may purge up to this many.
const PURGE_PER_WRITE: usize = 4;

/// Share of a shard's capacity kept for the small (probationary) FIFO, in percent. The
/// paper uses 10%; measured with `examples/hit_ratio.rs`, 3% (`quick_cache`'s default)
/// scores the same on Zipf and scan traces (within 0.05 point) and 1 point better on a
/// loop slightly larger than the cache, where the small queue is pure loss.
const SMALL_QUEUE_PERCENT: usize = 3;

/// The frequency saturates at 3 (two bits' worth): enough to tell one-hit wonders from
/// hot keys, and a hot key's entry is then only ever read, never written, by hits.
pub(super) const MAX_FREQUENCY: u8 = 3;

/// The table hash of a folded hash: an odd multiplication (a bijection) that spreads the
/// 32 bits over the 64 the table uses (its low bits pick the bucket, its top 7 bits are
/// the control byte).
fn table_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One shard: an independent S3-FIFO cache.
pub(super) struct Shard<K, V> {
    pub(super) table: HashTable<u32>,
    pub(super) slab: Slab<K, V>,
    /// Direct-mapped ghost table of folded hashes (0 = empty slot); allocated at the
    /// first eviction. A collision overwrites the older hash, which approximates the
    /// paper's FIFO ghost queue at 4 bytes per slot and no bookkeeping.
    ghost: Box<[u32]>,
    pub(super) capacity: usize,
    /// 0 for an unbounded shard: everything goes to main, which is then never evicted.
    small_capacity: usize,
    /// Bound on the sum of the weights; `u64::MAX` without `max_bytes`.
    pub(super) max_weight: u64,
    /// The small queue's share of `max_weight`.
    small_max_weight: u64,
}

impl<K, V> Shard<K, V> {
    /// A shard bounded by `capacity` entries if `bounded`, and by `max_weight` if some.
    pub(super) fn new(
        capacity: usize,
        bounded: bool,
        weighted: bool,
        max_weight: Option<u64>,
    ) -> Self {
        let bounded = bounded || max_weight.is_some();
        let small_capacity = if bounded {
            // In `u64`: `capacity * 3` overflows a 32-bit `usize` for large capacities.
            let share = capacity as u64 * SMALL_QUEUE_PERCENT as u64 / 100;
            (share as usize).max(1).min(capacity)
        } else {
            0
        };
        let max_weight = max_weight.unwrap_or(u64::MAX);
        Shard {
            table: HashTable::new(),
            slab: Slab::new(weighted),
            ghost: Box::default(),
            capacity,
            small_capacity,
            max_weight,
            small_max_weight: max_weight / 100 * SMALL_QUEUE_PERCENT as u64,
        }
    }

    /// Whether the shard must evict before it can take a new entry weighing `weight`.
    pub(super) fn is_full_for(&self, weight: u32) -> bool {
        self.slab.slots.len() >= self.capacity
            || self.slab.weight().saturating_add(u64::from(weight)) > self.max_weight
    }

    pub(super) fn find(&self, hash: u32, mut eq: impl FnMut(&K) -> bool) -> Option<u32> {
        self.table
            .find(table_hash(hash), |&idx| {
                eq(&self.slab.slots[idx as usize].key)
            })
            .copied()
    }

    /// Appends a new entry to `queue`. The caller has made room (`!is_full_for(weight)`)
    /// and checked that the key is absent.
    pub(super) fn push(
        &mut self,
        key: K,
        value: V,
        hash: u32,
        weight: u32,
        times: Times,
        queue: Queue,
    ) {
        self.slab.reserve_one(self.capacity);
        let idx = self.slab.push(key, value, hash, weight, times, queue);
        let slots = &self.slab.slots;
        self.table.insert_unique(table_hash(hash), idx, |&i| {
            table_hash(slots[i as usize].hash)
        });
    }

    /// Removes entry `idx` from its queue, the table and the slab; the last entry of the
    /// slab moves into its place.
    pub(super) fn take(&mut self, idx: u32) -> (K, V) {
        let hash = self.slab.slots[idx as usize].hash;
        if let Ok(entry) = self.table.find_entry(table_hash(hash), |&i| i == idx) {
            entry.remove();
        }
        let last = (self.slab.slots.len() - 1) as u32;
        if idx != last {
            let moved_hash = self.slab.slots[last as usize].hash;
            if let Some(index) = self.table.find_mut(table_hash(moved_hash), |&i| i == last) {
                *index = idx;
            }
        }
        let slot = self.slab.swap_remove(idx);
        (slot.key, slot.value)
    }

    fn ghost_insert(&mut self, hash: u32) {
        if self.ghost.is_empty() {
            // Sized by the entries the shard holds at its first eviction: its capacity
            // when bounded by entries, and an estimate of how many fit when bounded by
            // weight (whose entry capacity is the unbounded maximum).
            let len = self.slab.slots.len().clamp(1, self.capacity.max(1));
            self.ghost = vec![0; len.next_power_of_two()].into_boxed_slice();
        }
        let at = hash as usize & (self.ghost.len() - 1);
        self.ghost[at] = hash.max(1);
    }

    /// Whether `hash` was evicted from the small queue recently; forgets it if so.
    fn ghost_take(&mut self, hash: u32) -> bool {
        if self.ghost.is_empty() {
            return false;
        }
        let at = hash as usize & (self.ghost.len() - 1);
        let found = self.ghost[at] == hash.max(1);
        if found {
            self.ghost[at] = 0;
        }
        found
    }

    /// Purges the expired entries among the `PURGE_PER_WRITE` oldest (small queue first).
    pub(super) fn purge_expired(
        &mut self,
        now: u64,
        tti: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        let mut budget = PURGE_PER_WRITE;
        for queue in [Queue::Small, Queue::Main] {
            let mut idx = self.slab.list_mut(queue).oldest;
            while budget > 0 && idx != NIL {
                budget -= 1;
                let next = self.slab.slots[idx as usize].newer;
                if self.slab.is_expired(idx, now, tti) {
                    // `take` moves the last slot into `idx`; if that was `next`, follow it.
                    let last = (self.slab.slots.len() - 1) as u32;
                    let (key, value) = self.take(idx);
                    removed.push(key, value, RemovalCause::Expired);
                    idx = if next == last { idx } else { next };
                } else {
                    idx = next;
                }
            }
        }
    }

    /// Removes one entry by S3-FIFO (or an expired one met on the way); returns false if
    /// the shard is empty.
    pub(super) fn evict_one(
        &mut self,
        now: u64,
        tti: Option<u64>,
        removed: &mut Removed<K, V>,
    ) -> bool {
        // Terminates: the shard's write lock keeps readers from raising frequencies, and
        // every promotion shrinks the small queue.
        while self.slab.small.len > 0 {
            let idx = self.slab.small.oldest;
            if self.slab.is_expired(idx, now, tti) {
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Expired);
                return true;
            }
            let slot = &self.slab.slots[idx as usize];
            let freq = slot.freq.load(Relaxed);
            if freq == 0 {
                let hash = slot.hash;
                self.ghost_insert(hash);
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Evicted);
                return true;
            }
            // Read while on probation: promoted to main, at the cost of one level.
            slot.freq.store(freq - 1, Relaxed);
            self.slab.unlink(idx);
            self.slab.link_newest(idx, Queue::Main);
            if self.slab.main.len > self.main_capacity()
                || self.slab.main.weight > self.main_max_weight()
            {
                return self.evict_main(now, tti, removed);
            }
        }
        self.evict_main(now, tti, removed)
    }

    /// Main is a FIFO with second chances (CLOCK): an entry read since it was last
    /// examined goes back to the tail with one frequency level less.
    fn evict_main(&mut self, now: u64, tti: Option<u64>, removed: &mut Removed<K, V>) -> bool {
        // Terminates: the shard's write lock keeps readers from raising frequencies, and
        // every second chance lowers one.
        while self.slab.main.len > 0 {
            let idx = self.slab.main.oldest;
            if self.slab.is_expired(idx, now, tti) {
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Expired);
                return true;
            }
            let slot = &self.slab.slots[idx as usize];
            let freq = slot.freq.load(Relaxed);
            if freq == 0 {
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Evicted);
                return true;
            }
            slot.freq.store(freq - 1, Relaxed);
            self.slab.unlink(idx);
            self.slab.link_newest(idx, Queue::Main);
        }
        false
    }

    fn main_capacity(&self) -> usize {
        self.capacity - self.small_capacity
    }

    fn main_max_weight(&self) -> u64 {
        self.max_weight - self.small_max_weight
    }

    /// The queue a new key enters: main if the key was evicted from the small queue
    /// recently (or the store is unbounded), or while main is still filling up; else small.
    pub(super) fn queue_for_new(&mut self, hash: u32) -> Queue {
        let main_filling = self.slab.main.len < self.main_capacity()
            && self.slab.main.weight < self.main_max_weight();
        if self.small_capacity == 0 || self.ghost_take(hash) || main_filling {
            Queue::Main
        } else {
            Queue::Small
        }
    }

    /// Empties the shard and returns its entries, to be reported with no lock held.
    pub(super) fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.table.clear();
        self.ghost.fill(0);
        self.slab.clear()
    }
}
