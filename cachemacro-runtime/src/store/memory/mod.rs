//! The embedded in-memory store: sharded hash tables of dense entry slabs, S3-FIFO
//! eviction and per-entry expiry.
//!
//! # Design
//!
//! - The store is split into shards (a power of two, 4 per CPU, fewer for small
//!   capacities so that each shard holds at least `MIN_SHARD_CAPACITY` entries). A shard
//!   is one `RwLock` around a dense `Vec` of entries (key, value, links, frequency) and a
//!   `hashbrown::HashTable<u32>` of indices into it. Keeping keys and values out of the
//!   hash table is what makes the store small: at 1M entries the tables sit at a load
//!   factor of 0.48, so every byte of a bucket costs about 2.1 bytes per entry, and a
//!   bucket here is a 4-byte index instead of the whole entry.
//! - A read takes the shard's *read* lock, finds the index with the key's hash and an
//!   equality test (an owned `&K` or a borrowed [`KeyRef`], so a hit never builds a key),
//!   and touches only atomics in the entry: the 2-bit S3-FIFO frequency and, with a time
//!   to idle, the last-read stamp. Readers never wait for each other.
//! - Eviction follows S3-FIFO (Yang et al., "FIFO queues are all you need for cache
//!   eviction", SOSP '23), with `quick_cache`'s refinements. Once the main FIFO is full
//!   (97% of the shard), new keys enter a small FIFO; eviction takes from the small queue
//!   first, promoting to main an entry that was read meanwhile and otherwise evicting it,
//!   with its hash remembered in a ghost table. A new key whose hash is in the ghost
//!   table goes straight to main. Main is a FIFO with second chances: an entry read since
//!   it was last examined loses one frequency level and goes back to the tail. One-time
//!   keys (scans) therefore never displace the main queue, and a key that comes back
//!   after its eviction (a loop slightly larger than the cache) is kept the second time.
//!   Measured against LRU, moka, quick_cache and Bélády in `examples/hit_ratio.rs` (see
//!   BENCHMARKS.md, "Hit ratio").
//! - Each shard is its own S3-FIFO cache with `capacity / shards` entries, like
//!   `quick_cache`: the policy state lives under the shard's write lock, so there is no
//!   global policy lock, writers to different shards never contend, and a burst of
//!   inserts never blocks readers of other shards. Every structural change of a shard
//!   happens under its write lock, so no shard, and hence not the store, ever holds more
//!   than its capacity, not even transiently under concurrency.
//! - No code of the user's runs while a shard is inconsistent: keys are hashed before the
//!   lock is taken, compared (`Eq`) before anything is changed, and every removed key and
//!   value is handed to the removal listener and dropped after the lock is released.
//!   Eviction compares indices and stored hashes only.
//! - A hit is a shard read lock, one probe, at most one relaxed byte store (none once the
//!   frequency saturates) and the value's clone: no allocation, no shared counter.
//! - The hasher is `foldhash::fast::RandomState`: several times faster than SipHash, and
//!   seeded randomly per process (and per store), so an attacker who does not know the
//!   seed cannot aim keys at one bucket. That is resistance enough for a bounded cache,
//!   whose worst case is a slow shard, not unbounded memory. The 64-bit hash is folded to
//!   32 bits and stored in the entry (4 bytes instead of 8); tables and ghost are indexed
//!   by a multiplicative spread of those 32 bits, which can be recomputed at any time.
//! - Expiry is lazy and needs no background thread: a read reports an expired entry as a
//!   miss, and every insert purges expired entries among the few oldest of each queue, so
//!   the work per write stays bounded. Expiry stamps live in a side vector that a shard
//!   only allocates once one of its entries has a time to live (or the store a time to
//!   idle), so a store without expiry pays neither the memory nor the clock reads.
//! - Time is kept as `u64` nanoseconds since an [`Instant`] taken at construction.
//! - A weighted store (`max_bytes` or a weigher) bounds each shard by the total weight
//!   of its entries as well as by their number. Weights are computed before the lock is
//!   taken (the weigher is user code) and kept in a side vector like the expiry stamps,
//!   so a store without weights pays nothing per entry; each queue keeps the sum of its
//!   entries' weights, and the small queue gets 3% of the shard's weight as it gets 3%
//!   of its entries.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

mod api;

use super::{Store, StoreError, StoreStats};
use crate::KeyRef;

/// "No entry": the end of a queue.
const NIL: u32 = u32::MAX;

/// Entries are addressed by `u32` within a shard, which bounds a shard, including one of
/// an "unbounded" store, to `u32::MAX - 1` entries (about four billion per shard: far
/// more than fits in memory for any useful entry size).
const MAX_SHARD_ENTRIES: usize = (NIL - 1) as usize;

/// How many of the oldest entries each insert checks for expiry. Small and constant so a
/// write never pays for a large backlog; steady writes still drain expired entries faster
/// than they can pile up, since each insert adds one entry and may purge up to this many.
const PURGE_PER_WRITE: usize = 4;

/// A bounded store gets fewer shards when its capacity is small, so that every shard
/// holds at least this many entries: S3-FIFO needs room for its small queue, and many
/// tiny independent caches would make the hit ratio depend on how keys fall on shards.
const MIN_SHARD_CAPACITY: usize = 256;

/// The same for a bound on weight: every shard gets at least this much of `max_bytes`
/// (fewer shards below twice that). An entry heavier than its shard's budget cannot be
/// stored, so the budget must stay well above typical entries; 64 KiB still holds a few
/// hundred entries of a couple of hundred bytes.
const MIN_SHARD_WEIGHT: u64 = 64 * 1024;

/// Share of a shard's capacity kept for the small (probationary) FIFO, in percent. The
/// paper uses 10%; measured with `examples/hit_ratio.rs`, 3% (`quick_cache`'s default)
/// scores the same on Zipf and scan traces (within 0.05 point) and 1 point better on a
/// loop slightly larger than the cache, where the small queue is pure loss.
const SMALL_QUEUE_PERCENT: usize = 3;

/// The frequency saturates at 3 (two bits' worth): enough to tell one-hit wonders from
/// hot keys, and a hot key's entry is then only ever read, never written, by hits.
const MAX_FREQUENCY: u8 = 3;

/// Why an entry left a [`MemoryStore`]; passed to the listener set with
/// [`MemoryStoreBuilder::on_removal`].
///
/// ```
/// use cachemacro_runtime::RemovalCause;
///
/// assert_ne!(RemovalCause::Evicted, RemovalCause::Expired);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Removed to respect the store's capacity or its `max_bytes`.
    Evicted,
    /// Its time to live or time to idle ran out (found by a read-triggered write, a purge,
    /// the eviction, a `remove` or a replacing insert).
    Expired,
    /// Removed by [`Store::remove`] while still live.
    Invalidated,
    /// Its value was replaced by [`Store::insert`] under the same key; the listener gets
    /// the old value. Also the cause when the new value weighs more than a shard's share
    /// of `max_bytes`: it is not stored, and the old value is removed all the same, so
    /// the key is then absent.
    Replaced,
    /// Removed by [`Store::clear`].
    Cleared,
}

type Listener<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

type WeighFn<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// How a weighted store weighs an entry.
enum Weigher<K, V> {
    /// `size_of::<K>() + size_of::<V>()`, computed once: the default with `max_bytes`.
    /// A variant rather than a closure, which would require `K: 'static` and `V: 'static`.
    Shallow(u32),
    Custom(WeighFn<K, V>),
}

impl<K, V> Weigher<K, V> {
    fn weigh(&self, key: &K, value: &V) -> u32 {
        match self {
            Weigher::Shallow(weight) => *weight,
            Weigher::Custom(weigher) => weigher(key, value),
        }
    }
}

/// Which FIFO an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

/// One entry: for `u64 -> u64`, 16 bytes of key and value and 11 of metadata, 32 with
/// padding. Expiry stamps are kept apart (`Shard::times`) so that entries without expiry
/// do not pay for them.
struct Slot<K, V> {
    key: K,
    value: V,
    /// The key's folded hash, so the policy can find the table's index without hashing.
    hash: u32,
    /// Neighbours in the entry's queue (toward the head and toward the tail).
    older: u32,
    newer: u32,
    /// S3-FIFO frequency, raised by readers under the shard's read lock.
    freq: AtomicU8,
    queue: Queue,
}

/// Expiry stamps of one entry, in nanoseconds since the store's base.
struct Times {
    /// When the entry expires; 0 = never.
    expires_at: u64,
    /// Last read or write; only consulted when the store has a time to idle. Readers
    /// update it under the shard's read lock.
    last_read: AtomicU64,
}

impl Times {
    fn new(expires_at: u64, now: u64) -> Self {
        Times {
            expires_at,
            last_read: AtomicU64::new(now),
        }
    }

    fn is_expired(&self, now: u64, tti: Option<u64>) -> bool {
        (self.expires_at != 0 && now >= self.expires_at)
            || tti.is_some_and(|tti| now.saturating_sub(self.last_read.load(Relaxed)) >= tti)
    }
}

/// A FIFO threaded through the slots' `older`/`newer` links.
#[derive(Debug, Clone, Copy)]
struct List {
    oldest: u32,
    newest: u32,
    len: usize,
    /// Sum of the entries' weights; always 0 in a store without weights.
    weight: u64,
}

impl List {
    const EMPTY: List = List {
        oldest: NIL,
        newest: NIL,
        len: 0,
        weight: 0,
    };
}

/// The table hash of a folded hash: an odd multiplication (a bijection) that spreads the
/// 32 bits over the 64 the table uses (its low bits pick the bucket, its top 7 bits are
/// the control byte).
fn table_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One shard: an independent S3-FIFO cache.
struct Shard<K, V> {
    table: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    /// Parallel to `slots` once `timed` is set; empty before.
    times: Vec<Times>,
    /// Some entry of this shard has had expiry stamps (kept until `clear`).
    timed: bool,
    /// Parallel to `slots` in a weighted store; always empty otherwise.
    weights: Vec<u32>,
    /// The store weighs its entries (set at construction).
    weighted: bool,
    small: List,
    main: List,
    /// Direct-mapped ghost table of folded hashes (0 = empty slot); allocated at the
    /// first eviction. A collision overwrites the older hash, which approximates the
    /// paper's FIFO ghost queue at 4 bytes per slot and no bookkeeping.
    ghost: Box<[u32]>,
    capacity: usize,
    /// 0 for an unbounded shard: everything goes to main, which is then never evicted.
    small_capacity: usize,
    /// Bound on the sum of the weights; `u64::MAX` without `max_bytes`.
    max_weight: u64,
    /// The small queue's share of `max_weight`.
    small_max_weight: u64,
}

/// Entries removed under a shard lock, reported and dropped once it is released. The
/// first one is kept inline: an insert into a full store evicts one entry, and should not
/// allocate for it.
struct Removed<K, V> {
    first: Option<(K, V, RemovalCause)>,
    more: Vec<(K, V, RemovalCause)>,
    /// Removals that shrank the store (all but `Replaced`).
    shrunk: usize,
}

impl<K, V> Removed<K, V> {
    fn new() -> Self {
        Removed {
            first: None,
            more: Vec::new(),
            shrunk: 0,
        }
    }

    fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        if cause != RemovalCause::Replaced {
            self.shrunk += 1;
        }
        if self.first.is_none() {
            self.first = Some((key, value, cause));
        } else {
            self.more.push((key, value, cause));
        }
    }
}

impl<K, V> Shard<K, V> {
    /// A shard bounded by `capacity` entries if `bounded`, and by `max_weight` if some.
    fn new(capacity: usize, bounded: bool, weighted: bool, max_weight: Option<u64>) -> Self {
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
            slots: Vec::new(),
            times: Vec::new(),
            timed: false,
            weights: Vec::new(),
            weighted,
            small: List::EMPTY,
            main: List::EMPTY,
            ghost: Box::default(),
            capacity,
            small_capacity,
            max_weight,
            small_max_weight: max_weight / 100 * SMALL_QUEUE_PERCENT as u64,
        }
    }

    fn weight_of(&self, idx: u32) -> u64 {
        self.weights.get(idx as usize).map_or(0, |&w| u64::from(w))
    }

    /// Sum of the weights of the shard's entries.
    fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }

    /// Changes the weight of entry `idx`, in place.
    fn set_weight(&mut self, idx: u32, weight: u32) {
        if let Some(stored) = self.weights.get_mut(idx as usize) {
            let old = mem::replace(stored, weight);
            let queue = self.slots[idx as usize].queue;
            let list = self.list_mut(queue);
            list.weight = list.weight - u64::from(old) + u64::from(weight);
        }
    }

    /// Whether the shard must evict before it can take a new entry weighing `weight`.
    fn is_full_for(&self, weight: u32) -> bool {
        self.slots.len() >= self.capacity
            || self.weight().saturating_add(u64::from(weight)) > self.max_weight
    }

    fn find(&self, hash: u32, mut eq: impl FnMut(&K) -> bool) -> Option<u32> {
        self.table
            .find(table_hash(hash), |&idx| eq(&self.slots[idx as usize].key))
            .copied()
    }

    fn is_expired(&self, idx: u32, now: u64, tti: Option<u64>) -> bool {
        self.times
            .get(idx as usize)
            .is_some_and(|times| times.is_expired(now, tti))
    }

    /// Starts keeping expiry stamps for every entry of this shard.
    fn enable_times(&mut self, now: u64) {
        if !self.timed {
            self.timed = true;
            self.times.reserve_exact(self.slots.capacity());
            self.times
                .extend(self.slots.iter().map(|_| Times::new(0, now)));
        }
    }

    fn list_mut(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    fn link_newest(&mut self, idx: u32, queue: Queue) {
        let weight = self.weight_of(idx);
        let newest = self.list_mut(queue).newest;
        let slot = &mut self.slots[idx as usize];
        slot.queue = queue;
        slot.older = newest;
        slot.newer = NIL;
        if newest != NIL {
            self.slots[newest as usize].newer = idx;
        }
        let list = self.list_mut(queue);
        if newest == NIL {
            list.oldest = idx;
        }
        list.newest = idx;
        list.len += 1;
        list.weight += weight;
    }

    fn unlink(&mut self, idx: u32) {
        let weight = self.weight_of(idx);
        let slot = &self.slots[idx as usize];
        let (older, newer, queue) = (slot.older, slot.newer, slot.queue);
        if older != NIL {
            self.slots[older as usize].newer = newer;
        }
        if newer != NIL {
            self.slots[newer as usize].older = older;
        }
        let list = self.list_mut(queue);
        if older == NIL {
            list.oldest = newer;
        }
        if newer == NIL {
            list.newest = older;
        }
        list.len -= 1;
        list.weight -= weight;
    }

    /// Appends a new entry to `queue`. The caller has made room (`!is_full_for(weight)`)
    /// and checked that the key is absent.
    fn push(&mut self, key: K, value: V, hash: u32, weight: u32, times: Times, queue: Queue) {
        if self.slots.len() == self.slots.capacity() {
            // Doubling, but never past the capacity: a full bounded shard has no slack.
            let len = self.slots.len();
            let target = len.saturating_mul(2).max(8).min(self.capacity).max(len + 1);
            self.slots.reserve_exact(target - len);
        }
        let idx = self.slots.len() as u32;
        self.slots.push(Slot {
            key,
            value,
            hash,
            older: NIL,
            newer: NIL,
            freq: AtomicU8::new(0),
            queue,
        });
        if self.timed {
            self.times
                .reserve_exact(self.slots.capacity() - self.times.len());
            self.times.push(times);
        }
        if self.weighted {
            self.weights
                .reserve_exact(self.slots.capacity() - self.weights.len());
            self.weights.push(weight);
        }
        let slots = &self.slots;
        self.table.insert_unique(table_hash(hash), idx, |&i| {
            table_hash(slots[i as usize].hash)
        });
        self.link_newest(idx, queue);
    }

    /// Removes entry `idx` from its queue, the table and the slab; the last entry of the
    /// slab moves into its place.
    fn take(&mut self, idx: u32) -> (K, V) {
        self.unlink(idx);
        let hash = self.slots[idx as usize].hash;
        if let Ok(entry) = self.table.find_entry(table_hash(hash), |&i| i == idx) {
            entry.remove();
        }
        let last = (self.slots.len() - 1) as u32;
        if idx != last {
            let moved = &self.slots[last as usize];
            let (older, newer, queue, moved_hash) =
                (moved.older, moved.newer, moved.queue, moved.hash);
            if let Some(index) = self.table.find_mut(table_hash(moved_hash), |&i| i == last) {
                *index = idx;
            }
            if older != NIL {
                self.slots[older as usize].newer = idx;
            }
            if newer != NIL {
                self.slots[newer as usize].older = idx;
            }
            let list = self.list_mut(queue);
            if list.oldest == last {
                list.oldest = idx;
            }
            if list.newest == last {
                list.newest = idx;
            }
        }
        if self.timed {
            self.times.swap_remove(idx as usize);
        }
        if self.weighted {
            self.weights.swap_remove(idx as usize);
        }
        let slot = self.slots.swap_remove(idx as usize);
        (slot.key, slot.value)
    }

    fn ghost_insert(&mut self, hash: u32) {
        if self.ghost.is_empty() {
            // Sized by the entries the shard holds at its first eviction: its capacity
            // when bounded by entries, and an estimate of how many fit when bounded by
            // weight (whose entry capacity is the unbounded maximum).
            let len = self.slots.len().clamp(1, self.capacity.max(1));
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
    fn purge_expired(&mut self, now: u64, tti: Option<u64>, removed: &mut Removed<K, V>) {
        let mut budget = PURGE_PER_WRITE;
        for queue in [Queue::Small, Queue::Main] {
            let mut idx = self.list_mut(queue).oldest;
            while budget > 0 && idx != NIL {
                budget -= 1;
                let next = self.slots[idx as usize].newer;
                if self.is_expired(idx, now, tti) {
                    // `take` moves the last slot into `idx`; if that was `next`, follow it.
                    let last = (self.slots.len() - 1) as u32;
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
    fn evict_one(&mut self, now: u64, tti: Option<u64>, removed: &mut Removed<K, V>) -> bool {
        // Terminates: the shard's write lock keeps readers from raising frequencies, and
        // every promotion shrinks the small queue.
        while self.small.len > 0 {
            let idx = self.small.oldest;
            if self.is_expired(idx, now, tti) {
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Expired);
                return true;
            }
            let slot = &self.slots[idx as usize];
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
            self.unlink(idx);
            self.link_newest(idx, Queue::Main);
            if self.main.len > self.main_capacity() || self.main.weight > self.main_max_weight() {
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
        while self.main.len > 0 {
            let idx = self.main.oldest;
            if self.is_expired(idx, now, tti) {
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Expired);
                return true;
            }
            let slot = &self.slots[idx as usize];
            let freq = slot.freq.load(Relaxed);
            if freq == 0 {
                let (key, value) = self.take(idx);
                removed.push(key, value, RemovalCause::Evicted);
                return true;
            }
            slot.freq.store(freq - 1, Relaxed);
            self.unlink(idx);
            self.link_newest(idx, Queue::Main);
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
    fn queue_for_new(&mut self, hash: u32) -> Queue {
        let main_filling =
            self.main.len < self.main_capacity() && self.main.weight < self.main_max_weight();
        if self.small_capacity == 0 || self.ghost_take(hash) || main_filling {
            Queue::Main
        } else {
            Queue::Small
        }
    }

    fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.table.clear();
        self.times = Vec::new();
        self.timed = false;
        self.weights = Vec::new();
        self.small = List::EMPTY;
        self.main = List::EMPTY;
        self.ghost.fill(0);
        mem::take(&mut self.slots)
    }
}

/// Aligned to 128 bytes (two cache lines, for adjacent-line prefetch) so that two
/// shards' locks never share a line.
#[repr(align(128))]
struct Padded<T>(T);

type LockedShard<K, V> = Padded<RwLock<Shard<K, V>>>;

/// The embedded in-memory store: a concurrent map with optional bounds on its number of
/// entries and on their total weight (evicting by S3-FIFO), a default time to live, a time
/// to idle, per-entry time to live and a removal listener.
///
/// Reads take no exclusive lock and never allocate, not even from a borrowed key
/// ([`Store::get_borrowed`]): many threads reading the same hot keys do not contend.
/// Writes lock one shard. Expired entries are never returned; they are purged a few at a
/// time by later writes, without any background thread.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::{MemoryStore, Store, StoreError};
///
/// let store: MemoryStore<String, u64> = MemoryStore::builder()
///     .capacity(10_000)
///     .ttl(Duration::from_secs(300))
///     .build();
///
/// store.insert("answer".to_owned(), 42, None)?;
/// // This entry overrides the default time to live.
/// store.insert("pi".to_owned(), 3, Some(Duration::from_secs(5)))?;
///
/// assert_eq!(store.get(&"answer".to_owned())?, Some(42));
/// assert_eq!(store.get(&"missing".to_owned())?, None);
/// assert_eq!(store.len(), 2);
/// # Ok::<(), StoreError>(())
/// ```
pub struct MemoryStore<K, V> {
    shards: Box<[LockedShard<K, V>]>,
    /// `32 - log2(shards)`: a shard is picked by the top bits of the folded hash, which
    /// neither the table's bucket index (low bits) nor the ghost index use.
    shard_shift: u32,
    hasher: foldhash::fast::RandomState,
    capacity: Option<usize>,
    max_bytes: Option<u64>,
    /// Set when the store weighs its entries (`max_bytes` or a weigher).
    weigher: Option<Weigher<K, V>>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    tti_nanos: Option<u64>,
    base: Instant,
    entries: AtomicUsize,
    evictions: AtomicU64,
    expirations: AtomicU64,
    listener: Option<Listener<K, V>>,
}

/// Shards per store: 4 per CPU, as dashmap does, computed once per process.
fn default_shard_count() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        (std::thread::available_parallelism().map_or(1, usize::from) * 4).next_power_of_two()
    })
}

impl<K: Hash + Eq + Clone, V: Clone> MemoryStore<K, V> {
    /// An unbounded store whose entries expire only when given a time to live at insert.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u64, String>::new();
    /// assert_eq!(store.capacity(), None);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a store: capacity, default time to live, time to idle, removal
    /// listener.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u64, u64>::builder()
    ///     .capacity(1_000)
    ///     .tti(Duration::from_secs(60))
    ///     .build();
    /// assert_eq!(store.capacity(), Some(1_000));
    /// ```
    pub fn builder() -> MemoryStoreBuilder<K, V> {
        MemoryStoreBuilder {
            capacity: None,
            max_bytes: None,
            weigher: None,
            ttl: None,
            tti: None,
            listener: None,
            types: PhantomData,
        }
    }

    /// Number of entries held, including expired entries not purged yet.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::new();
    /// store.insert(1, "one", None).unwrap();
    /// store.insert(1, "uno", None).unwrap();
    /// assert_eq!(store.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.load(Relaxed)
    }

    /// Whether the store holds no entry (expired entries not purged yet count as held).
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// assert!(MemoryStore::<u8, u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on the number of entries, as configured; `None` if unbounded.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().capacity(64).build();
    /// assert_eq!(store.capacity(), Some(64));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// The bound on the total weight of the entries, as configured with
    /// [`MemoryStoreBuilder::max_bytes`]; `None` if there is none.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().max_bytes(1 << 20).build();
    /// assert_eq!(store.max_bytes(), Some(1 << 20));
    /// assert_eq!(MemoryStore::<u8, u8>::new().max_bytes(), None);
    /// ```
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The total weight of the entries held, including expired entries not purged yet;
    /// always 0 for a store configured with neither `max_bytes` nor a weigher, which does
    /// not weigh its entries. Takes each shard's read lock in turn, so under concurrent
    /// writes the sum is not a snapshot of one instant.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::builder()
    ///     .weigher(|_key: &u32, value: &String| value.len() as u32)
    ///     .build();
    /// store.insert(1, "four".to_owned(), None).unwrap();
    /// store.insert(2, "seven..".to_owned(), None).unwrap();
    /// assert_eq!(store.weighted_size(), 11);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .0
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .weight()
            })
            .sum()
    }
}

impl<K, V> MemoryStore<K, V> {
    fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }

    /// The key's 64-bit hash folded to the 32 bits entries store.
    fn hash<T: Hash + ?Sized>(&self, key: &T) -> u32 {
        let hash = self.hasher.hash_one(key);
        (hash ^ (hash >> 32)) as u32
    }

    fn shard_of(&self, hash: u32) -> usize {
        // `checked_shr`: with one shard the shift is 32, and the index 0.
        hash.checked_shr(self.shard_shift).unwrap_or(0) as usize
    }

    fn read_shard(&self, hash: u32) -> RwLockReadGuard<'_, Shard<K, V>> {
        let lock = &self.shards[self.shard_of(hash)].0;
        lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a shard's write lock. A panic in user code (`Eq` of `K`, while probing) with
    /// the lock held poisons it; every write compares keys before it changes anything and
    /// drops keys and values after the lock is released, so the shard is still sound and
    /// the store keeps working instead of failing every later call.
    fn write_shard(&self, index: usize) -> RwLockWriteGuard<'_, Shard<K, V>> {
        let lock = &self.shards[index].0;
        lock.write().unwrap_or_else(|poisoned| {
            lock.clear_poison();
            poisoned.into_inner()
        })
    }

    /// The hit path shared by [`Store::get`] and [`Store::get_borrowed`].
    fn lookup(&self, hash: u32, eq: impl FnMut(&K) -> bool) -> Option<V>
    where
        V: Clone,
    {
        let shard = self.read_shard(hash);
        let idx = shard.find(hash, eq)?;
        if let Some(times) = shard.times.get(idx as usize) {
            if times.expires_at != 0 || self.tti_nanos.is_some() {
                let now = self.now();
                if times.is_expired(now, self.tti_nanos) {
                    return None;
                }
                if self.tti_nanos.is_some() {
                    // `fetch_max`, not `store`: a slower concurrent reader must not move
                    // the stamp back in time.
                    times.last_read.fetch_max(now, Relaxed);
                }
            }
        }
        let slot = &shard.slots[idx as usize];
        // Load first: hot entries are saturated, and skipping the store keeps their cache
        // line shared between the cores reading them. A lost race between two readers
        // only loses one increment.
        let freq = slot.freq.load(Relaxed);
        if freq < MAX_FREQUENCY {
            slot.freq.store(freq + 1, Relaxed);
        }
        Some(slot.value.clone())
    }

    /// Counts the removed entries, calls the listener on each (no lock held) and drops
    /// them.
    fn report(&self, removed: Removed<K, V>) {
        let Removed { first, more, .. } = removed;
        let all = first.into_iter().chain(more);
        for (key, value, cause) in all {
            match cause {
                RemovalCause::Evicted => {
                    self.evictions.fetch_add(1, Relaxed);
                }
                RemovalCause::Expired => {
                    self.expirations.fetch_add(1, Relaxed);
                }
                _ => {}
            }
            if let Some(listener) = &self.listener {
                listener(&key, &value, cause);
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for MemoryStore<K, V> {
    /// Same as [`MemoryStore::new`].
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store: MemoryStore<String, Vec<u8>> = MemoryStore::default();
    /// assert!(store.is_empty());
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for MemoryStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.entries.load(Relaxed))
            .field("capacity", &self.capacity)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish()
    }
}

impl<K, V> Store<K, V> for MemoryStore<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        Ok(self.lookup(self.hash(key), |stored| stored == key))
    }

    fn get_borrowed<Q>(&self, key: &Q) -> Option<V>
    where
        Q: KeyRef<Key = K> + ?Sized,
    {
        // `KeyRef` guarantees the borrowed key hashes like the owned one, so the same
        // hasher finds the same shard and bucket.
        self.lookup(self.hash(key), |stored| key.matches(stored))
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        let hash = self.hash(&key);
        // Weighed before the lock is taken, like the hash: the weigher is user code.
        let weight = self
            .weigher
            .as_ref()
            .map_or(0, |weigher| weigher.weigh(&key, &value));
        let index = self.shard_of(hash);
        let mut removed = Removed::new();
        let mut shard = self.write_shard(index);
        if shard.capacity == 0 {
            // Capacity 0: the store holds nothing (caching disabled by configuration).
            drop(shard);
            return Ok(());
        }
        let ttl = ttl.or(self.ttl);
        let tti = self.tti_nanos;
        // The clock is read only when some entry of this shard can expire.
        let now = if ttl.is_some() || tti.is_some() || shard.timed {
            self.now()
        } else {
            0
        };
        if shard.timed {
            shard.purge_expired(now, tti, &mut removed);
            // Counted at once: the `Eq` below is user code and may panic.
            self.entries
                .fetch_sub(mem::take(&mut removed.shrunk), Relaxed);
        }
        if ttl.is_some() || tti.is_some() {
            shard.enable_times(now);
        }
        let expires_at = ttl.map_or(0, |ttl| now.saturating_add(nanos(ttl)).max(1));

        // An entry heavier than the shard's budget is not stored, however much is evicted.
        let fits = u64::from(weight) <= shard.max_weight;
        let mut key = Some(key);
        let mut value = Some(value);
        if let Some(idx) = shard.find(hash, |stored| Some(stored) == key.as_ref()) {
            if shard.is_expired(idx, now, tti) {
                // Replacing an expired entry is a new entry, queued as any new key.
                let (old_key, old_value) = shard.take(idx);
                removed.push(old_key, old_value, RemovalCause::Expired);
            } else if !fits {
                // The old value goes too: serving it in place of the new one would be
                // serving a stale result.
                let (old_key, old_value) = shard.take(idx);
                removed.push(old_key, old_value, RemovalCause::Replaced);
                // `Replaced` does not count as shrinking; here the entry is gone.
                removed.shrunk += 1;
            } else {
                // A live entry is updated in place: same queue position and frequency.
                if let Some(times) = shard.times.get_mut(idx as usize) {
                    times.expires_at = expires_at;
                    *times.last_read.get_mut() = now;
                }
                shard.set_weight(idx, weight);
                let new_value = value.take().expect("value not consumed yet");
                let old = mem::replace(&mut shard.slots[idx as usize].value, new_value);
                let key = key.take().expect("key not consumed yet");
                removed.push(key, old, RemovalCause::Replaced);
            }
        }
        match (key, value) {
            (Some(key), Some(value)) if fits => {
                while shard.is_full_for(weight) {
                    if !shard.evict_one(now, tti, &mut removed) {
                        break;
                    }
                }
                let queue = shard.queue_for_new(hash);
                shard.push(key, value, hash, weight, Times::new(expires_at, now), queue);
                // Decrease before increase, both under the shard lock: the sum of the
                // shards' contributions never exceeds the capacity.
                self.entries.fetch_sub(removed.shrunk, Relaxed);
                self.entries.fetch_add(1, Relaxed);
                drop(shard);
            }
            (key, value) => {
                // Replaced in place, possibly by a heavier value: make room by the same
                // order, which may pick the replaced entry itself if it is the next victim.
                while shard.weight() > shard.max_weight {
                    if !shard.evict_one(now, tti, &mut removed) {
                        break;
                    }
                }
                self.entries.fetch_sub(removed.shrunk, Relaxed);
                drop(shard);
                // An entry too heavy to store is dropped here, with no lock held.
                drop((key, value));
            }
        }
        self.report(removed);
        Ok(())
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let hash = self.hash(key);
        let mut shard = self.write_shard(self.shard_of(hash));
        let Some(idx) = shard.find(hash, |stored| stored == key) else {
            return Ok(false);
        };
        let live = !shard.timed || !shard.is_expired(idx, self.now(), self.tti_nanos);
        let (old_key, old_value) = shard.take(idx);
        self.entries.fetch_sub(1, Relaxed);
        drop(shard);
        let cause = if live {
            RemovalCause::Invalidated
        } else {
            RemovalCause::Expired
        };
        let mut removed = Removed::new();
        removed.push(old_key, old_value, cause);
        self.report(removed);
        Ok(live)
    }

    fn clear(&self) -> Result<(), StoreError> {
        for index in 0..self.shards.len() {
            let mut shard = self.write_shard(index);
            let slots = shard.clear();
            self.entries.fetch_sub(slots.len(), Relaxed);
            drop(shard);
            if let Some(listener) = &self.listener {
                for slot in &slots {
                    listener(&slot.key, &slot.value, RemovalCause::Cleared);
                }
            }
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        // All fields are set, so no `..StoreStats::default()` (clippy::needless_update).
        StoreStats {
            entries: self.entries.load(Relaxed) as u64,
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
        }
    }
}

/// Configures a [`MemoryStore`]: bounds on entries and on their total weight, default time
/// to live, time to idle, removal listener.
///
/// Every setting is optional; `MemoryStore::builder().build()` is the same as
/// [`MemoryStore::new`].
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::MemoryStore;
///
/// let sessions = MemoryStore::<u64, String>::builder()
///     .capacity(50_000)
///     .ttl(Duration::from_secs(24 * 3600))
///     .tti(Duration::from_secs(30 * 60))
///     .build();
/// assert_eq!(sessions.capacity(), Some(50_000));
/// ```
pub struct MemoryStoreBuilder<K, V> {
    capacity: Option<usize>,
    max_bytes: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    listener: Option<Listener<K, V>>,
    // `fn() -> _`: the builder holds no `K` or `V`, so it is `Send + Sync` regardless.
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> MemoryStoreBuilder<K, V> {
    /// Bounds the store to `entries` entries; inserting a new key into a full store evicts
    /// one by S3-FIFO. `0` means the store holds nothing: inserts are accepted and dropped,
    /// every read misses (a way to disable caching from configuration).
    ///
    /// The bound is split evenly between the store's shards (one for capacities below
    /// 512), each evicting on its own, so a store can evict while another shard still has
    /// room; it never holds more than `entries`.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::builder().capacity(2).build();
    /// for n in 0..10 {
    ///     store.insert(n, n * n, None).unwrap();
    /// }
    /// assert_eq!(store.len(), 2);
    /// ```
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = Some(entries);
        self
    }

    /// Bounds the total weight of the entries to `bytes`; inserting evicts by S3-FIFO,
    /// in the same order as for [`capacity`](Self::capacity), until the new entry fits.
    /// Combines with `capacity`: both bounds then hold. Entries weigh what the
    /// [`weigher`](Self::weigher) says; without one, their shallow size,
    /// `size_of::<K>() + size_of::<V>()`: heap data is not counted, pass a weigher for
    /// that.
    ///
    /// The bound is split evenly between the store's shards (one below 128 KiB, and
    /// never more shards than `capacity` allows), each evicting on its own, so a store can
    /// evict while another shard still has room; it never holds more than `bytes`. An
    /// entry heavier than its shard's share is not stored: the insert succeeds, the key is
    /// then absent and every read misses, as with a capacity of 0 (an old value under the
    /// same key is removed, reported as [`RemovalCause::Replaced`]).
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// // Bounded by the length of the values, not by their number.
    /// let store = MemoryStore::builder()
    ///     .max_bytes(100)
    ///     .weigher(|_key: &u32, value: &String| value.len() as u32)
    ///     .build();
    /// for n in 0..50 {
    ///     store.insert(n, "x".repeat(10), None).unwrap();
    /// }
    /// assert_eq!(store.len(), 10);
    /// assert_eq!(store.weighted_size(), 100);
    ///
    /// // Heavier than the whole budget: not stored.
    /// store.insert(99, "x".repeat(101), None).unwrap();
    /// assert_eq!(store.get(&99).unwrap(), None);
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// The weight of one entry, counted against [`max_bytes`](Self::max_bytes) and by
    /// [`MemoryStore::weighted_size`]. It should be a pure function of the key and the
    /// value, and quick: it runs on every insert, before any lock is taken. Without
    /// `max_bytes`, the store is not bounded by weight but still sums the weights.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::builder()
    ///     .max_bytes(64 * 1024)
    ///     .weigher(|key: &String, value: &Vec<u8>| (key.len() + value.len()) as u32)
    ///     .build();
    /// store.insert("page".to_owned(), vec![0; 1_000], None).unwrap();
    /// assert_eq!(store.weighted_size(), 1_004);
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Weigher::Custom(Arc::new(weigher)));
        self
    }

    /// Default time to live: an entry expires this long after it was inserted, unless
    /// [`Store::insert`] gives it a time to live of its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().ttl(Duration::from_secs(60)).build();
    /// # let _ = store;
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Time to idle: an entry expires when it has not been read (nor re-inserted) for this
    /// long. Combines with the time to live: whichever runs out first expires the entry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().tti(Duration::from_secs(600)).build();
    /// # let _ = store;
    /// ```
    pub fn tti(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Calls `listener` once for every entry that leaves the store, with its key, its
    /// value and why ([`RemovalCause`]); for [`RemovalCause::Replaced`], with the old
    /// value. It runs on the thread whose call removed the entry, after the store's locks
    /// are released, so it may use the store; it should be quick, as that call waits for
    /// it. An expired entry is reported when a write purges it, not when a read first
    /// misses it.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use cachemacro_runtime::{MemoryStore, RemovalCause, Store};
    ///
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&evicted);
    /// let store = MemoryStore::builder()
    ///     .capacity(1)
    ///     .on_removal(move |_key: &u32, _value: &u32, cause| {
    ///         if cause == RemovalCause::Evicted {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build();
    /// store.insert(1, 1, None).unwrap();
    /// store.insert(2, 2, None).unwrap();
    /// assert_eq!(evicted.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_removal(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }
}

impl<K: Hash + Eq + Clone, V: Clone> MemoryStoreBuilder<K, V> {
    /// Creates the store.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().capacity(16).build();
    /// assert!(store.is_empty());
    /// ```
    pub fn build(self) -> MemoryStore<K, V> {
        let mut shard_count = default_shard_count();
        let too_small = |shard_count: usize| {
            self.capacity
                .is_some_and(|capacity| capacity / shard_count < MIN_SHARD_CAPACITY)
                || self
                    .max_bytes
                    .is_some_and(|bytes| bytes / (shard_count as u64) < MIN_SHARD_WEIGHT)
        };
        while shard_count > 1 && too_small(shard_count) {
            shard_count /= 2;
        }
        let weigher = match (self.weigher, self.max_bytes) {
            (Some(weigher), _) => Some(weigher),
            (None, Some(_)) => {
                let shallow = mem::size_of::<K>() + mem::size_of::<V>();
                Some(Weigher::Shallow(u32::try_from(shallow).unwrap_or(u32::MAX)))
            }
            (None, None) => None,
        };
        let shards = (0..shard_count)
            .map(|index| {
                let max_weight = self.max_bytes.map(|bytes| {
                    let count = shard_count as u64;
                    bytes / count + u64::from((index as u64) < bytes % count)
                });
                let (capacity, bounded) = match self.capacity {
                    Some(capacity) => {
                        let share =
                            capacity / shard_count + usize::from(index < capacity % shard_count);
                        (share.min(MAX_SHARD_ENTRIES), true)
                    }
                    None => (MAX_SHARD_ENTRIES, false),
                };
                let shard = Shard::new(capacity, bounded, weigher.is_some(), max_weight);
                Padded(RwLock::new(shard))
            })
            .collect();
        MemoryStore {
            shards,
            shard_shift: 32 - shard_count.trailing_zeros(),
            hasher: foldhash::fast::RandomState::default(),
            capacity: self.capacity,
            max_bytes: self.max_bytes,
            weigher,
            ttl: self.ttl,
            tti: self.tti,
            tti_nanos: self.tti.map(nanos),
            base: Instant::now(),
            entries: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            listener: self.listener,
        }
    }
}

impl<K, V> fmt::Debug for MemoryStoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreBuilder")
            .field("capacity", &self.capacity)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish()
    }
}

/// `d` in nanoseconds, saturating (`u64` nanoseconds last 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, Mutex, OnceLock};
    use std::thread;

    use super::*;

    const SHORT: Duration = Duration::from_millis(30);
    /// Long enough past `SHORT` that a loaded machine still sees the entry expired.
    const PAST_SHORT: Duration = Duration::from_millis(120);
    /// Long enough that nothing expires during a test, however slow the machine.
    const LONG: Duration = Duration::from_secs(600);

    fn store<V: Clone>(capacity: usize) -> MemoryStore<&'static str, V> {
        MemoryStore::builder().capacity(capacity).build()
    }

    fn stats(entries: u64, evictions: u64, expirations: u64) -> StoreStats {
        StoreStats {
            entries,
            evictions,
            expirations,
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MemoryStore<String, Vec<u8>>>();
        assert_send_sync::<MemoryStoreBuilder<String, std::rc::Rc<u8>>>();
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let store = MemoryStore::builder().capacity(10).build();
        for n in 0..1_000u32 {
            store.insert(n, n, None).unwrap();
            if n % 3 == 0 {
                // Reads set `visited` bits, so the hand has to spare and come back.
                store.get(&n).unwrap();
            }
            assert!(store.len() <= 10, "len {} after inserting {n}", store.len());
        }
        assert_eq!(store.len(), 10);
        let held = (0..1_000u32)
            .filter(|n| store.get(n).unwrap().is_some())
            .count();
        assert_eq!(held, 10);
        assert_eq!(store.stats(), stats(10, 990, 0));
    }

    /// The queue an entry is in, for tests of the policy.
    fn queue_of<V: Clone>(store: &MemoryStore<&'static str, V>, key: &'static str) -> Queue {
        let hash = store.hash(&key);
        let shard = store.read_shard(hash);
        let idx = shard.find(hash, |stored| *stored == key).expect("key held");
        shard.slots[idx as usize].queue
    }

    #[test]
    fn one_hit_wonders_cycle_through_the_small_queue_and_spare_main() {
        // Capacity 3: small queue 1, main 2. While main fills up, new keys enter it.
        let store = store(3);
        store.insert("a", 1, None).unwrap();
        store.insert("b", 2, None).unwrap();
        for key in ["c", "d", "e"] {
            store.insert(key, 0, None).unwrap();
            assert_eq!(queue_of(&store, key), Queue::Small);
        }
        // "c" made room for "d", "d" for "e"; main was never touched, though "b" was
        // never read.
        assert_eq!(store.get(&"c").unwrap(), None);
        assert_eq!(store.get(&"d").unwrap(), None);
        assert_eq!(store.get(&"a").unwrap(), Some(1));
        assert_eq!(store.get(&"b").unwrap(), Some(2));
        assert_eq!(store.get(&"e").unwrap(), Some(0));
        assert_eq!(store.stats(), stats(3, 2, 0));
    }

    #[test]
    fn a_key_read_on_probation_is_promoted_and_main_evicts_its_unread_entries_first() {
        let store = store(3);
        store.insert("a", 1, None).unwrap();
        store.insert("b", 2, None).unwrap();
        store.insert("c", 3, None).unwrap();
        assert_eq!(queue_of(&store, "c"), Queue::Small);
        store.get(&"a").unwrap();
        store.get(&"c").unwrap();
        // "c" was read while in the small queue: promoted to main, which is then over
        // its share; main's oldest, "a", was read, so it gets a second chance and "b",
        // never read, is evicted.
        store.insert("d", 4, None).unwrap();
        assert_eq!(queue_of(&store, "c"), Queue::Main);
        assert_eq!(store.get(&"b").unwrap(), None);
        assert_eq!(store.stats(), stats(3, 1, 0));
        // Main is now "c" (whose read paid for its promotion), then "a" (whose read paid
        // for its second chance), both unmarked. "d" is read on probation, so it is
        // promoted too, and main's oldest, "c", goes.
        store.get(&"d").unwrap();
        store.insert("e", 5, None).unwrap();
        assert_eq!(store.get(&"c").unwrap(), None);
        for (key, value) in [("a", 1), ("d", 4), ("e", 5)] {
            assert_eq!(store.get(&key).unwrap(), Some(value));
        }
        assert_eq!(store.stats(), stats(3, 2, 0));
    }

    #[test]
    fn a_key_evicted_from_the_small_queue_and_inserted_again_goes_to_main() {
        // Capacity 10: small queue 1, main 9.
        let store = store(10);
        let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];
        for key in keys {
            store.insert(key, 0, None).unwrap();
        }
        store.insert("again", 1, None).unwrap();
        assert_eq!(queue_of(&store, "again"), Queue::Small);
        // Unread, "again" is evicted from the small queue; its hash goes to the ghost.
        store.insert("once", 2, None).unwrap();
        assert_eq!(store.get(&"again").unwrap(), None);
        assert_eq!(store.stats(), stats(10, 1, 0));
        // Back within the ghost's memory: admitted to main directly, not on probation.
        store.insert("again", 1, None).unwrap();
        assert_eq!(queue_of(&store, "again"), Queue::Main);
        // One-time keys now cycle through the small queue (after main's oldest made room
        // for the first), and "again" stays, though it was never read.
        let wonders = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"];
        for key in wonders {
            store.insert(key, 3, None).unwrap();
            assert_eq!(queue_of(&store, key), Queue::Small);
        }
        assert_eq!(store.get(&"again").unwrap(), Some(1));
        assert_eq!(store.get(&"k0").unwrap(), None);
        for key in &keys[1..] {
            assert_eq!(store.get(key).unwrap(), Some(0));
        }
        assert_eq!(store.stats(), stats(10, 10, 0));
    }

    #[test]
    fn default_ttl_expires_entries() {
        let store = MemoryStore::builder().ttl(SHORT).build();
        store.insert("k", 1, None).unwrap();
        thread::sleep(PAST_SHORT);
        assert_eq!(store.get(&"k").unwrap(), None);
        // Expired but not purged yet: still held until a write gets to it.
        assert_eq!(store.len(), 1);
        assert_eq!(store.stats(), stats(1, 0, 0));
    }

    #[test]
    fn per_entry_ttl_overrides_default() {
        let store = MemoryStore::builder().ttl(SHORT).build();
        store.insert("default", 1, None).unwrap();
        store.insert("long", 2, Some(LONG)).unwrap();
        let never_by_default = MemoryStore::new();
        never_by_default.insert("short", 3, Some(SHORT)).unwrap();
        never_by_default.insert("forever", 4, None).unwrap();
        thread::sleep(PAST_SHORT);
        assert_eq!(store.get(&"default").unwrap(), None);
        assert_eq!(store.get(&"long").unwrap(), Some(2));
        assert_eq!(never_by_default.get(&"short").unwrap(), None);
        assert_eq!(never_by_default.get(&"forever").unwrap(), Some(4));
    }

    #[test]
    fn tti_read_keeps_entry_alive_and_idle_expires_it() {
        let tti = Duration::from_millis(200);
        let store = MemoryStore::builder().tti(tti).build();
        store.insert("read", 1, None).unwrap();
        store.insert("idle", 2, None).unwrap();
        // Six reads 40 ms apart: 240 ms in all, more than the time to idle, but never
        // 200 ms without a read.
        for _ in 0..6 {
            thread::sleep(Duration::from_millis(40));
            assert_eq!(store.get(&"read").unwrap(), Some(1));
        }
        assert_eq!(store.get(&"idle").unwrap(), None);
        thread::sleep(Duration::from_millis(400));
        assert_eq!(store.get(&"read").unwrap(), None);
    }

    #[test]
    fn reinsert_resets_tti() {
        let store = MemoryStore::builder()
            .tti(Duration::from_millis(200))
            .build();
        store.insert("k", 1, None).unwrap();
        for n in 2..8 {
            thread::sleep(Duration::from_millis(40));
            store.insert("k", n, None).unwrap();
        }
        assert_eq!(store.get(&"k").unwrap(), Some(7));
    }

    #[test]
    fn remove_reports_whether_a_live_entry_existed() {
        let store = MemoryStore::new();
        store.insert("live", 1, None).unwrap();
        store.insert("expired", 2, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        assert!(store.remove(&"live").unwrap());
        assert!(!store.remove(&"live").unwrap());
        assert!(!store.remove(&"absent").unwrap());
        assert!(!store.remove(&"expired").unwrap());
        assert!(store.is_empty());
        assert_eq!(store.stats(), stats(0, 0, 1));
        // The freed slots are reused and the queue still works.
        store.insert("again", 3, None).unwrap();
        assert_eq!(store.get(&"again").unwrap(), Some(3));
    }

    #[test]
    fn clear_removes_everything() {
        let store = store(8);
        for key in ["a", "b", "c"] {
            store.insert(key, 1, None).unwrap();
        }
        store.clear().unwrap();
        assert!(store.is_empty());
        for key in ["a", "b", "c"] {
            assert_eq!(store.get(&key).unwrap(), None);
        }
        assert_eq!(store.stats(), stats(0, 0, 0));
        // Usable afterwards, with the bound intact.
        for key in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            store.insert(key, 2, None).unwrap();
        }
        assert_eq!(store.len(), 8);
        assert_eq!(store.stats(), stats(8, 2, 0));
    }

    #[test]
    fn stats_count_evictions_and_expirations_exactly() {
        let store = MemoryStore::builder().capacity(4).build();
        for n in 0..7u32 {
            store.insert(n, n, None).unwrap();
        }
        assert_eq!(store.stats(), stats(4, 3, 0));

        // 0, 1, 2 (main) and 6 (small) are held. Two get a short time to live, updated
        // in place.
        store.insert(1, 10, Some(SHORT)).unwrap();
        store.insert(2, 20, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        // The write purges the expired 1 and 2 among the oldest, before inserting 2 anew.
        store.insert(2, 21, None).unwrap();
        assert_eq!(store.stats(), stats(3, 3, 2));
        assert_eq!(store.get(&2).unwrap(), Some(21));
        // Room was made by the purge: no eviction for the next new key.
        store.insert(7, 7, None).unwrap();
        assert_eq!(store.stats(), stats(4, 3, 2));
        store.insert(8, 8, None).unwrap();
        assert_eq!(store.stats(), stats(4, 4, 2));
    }

    #[test]
    fn replacing_an_expired_entry_counts_an_expiration() {
        // Five fresh entries sit before the expired one, beyond the purge window.
        let store = MemoryStore::new();
        for n in 0..5u32 {
            store.insert(n, n, None).unwrap();
        }
        store.insert(5, 5, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        store.insert(5, 50, None).unwrap();
        assert_eq!(store.stats(), stats(6, 0, 1));
        assert_eq!(store.get(&5).unwrap(), Some(50));
    }

    #[test]
    fn an_expired_entry_goes_before_anything_is_evicted() {
        let store = MemoryStore::builder().capacity(6).build();
        // 0..=4 fill main and are read; 5, in the small queue, expires.
        for n in 0..5u32 {
            store.insert(n, n, None).unwrap();
            store.get(&n).unwrap();
        }
        store.insert(5, 5, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        store.insert(6, 6, None).unwrap();
        assert_eq!(store.stats(), stats(6, 0, 1));
        for n in [0, 1, 2, 3, 4, 6] {
            assert_eq!(store.get(&n).unwrap(), Some(n));
        }
    }

    #[test]
    fn eviction_takes_an_expired_entry_it_meets() {
        // Unread entries in front of an expired one, beyond the purge window: the
        // eviction reaches it through main's second chances and counts an expiration.
        let store = MemoryStore::builder().capacity(6).build();
        for n in 0..5u32 {
            store.insert(n, n, None).unwrap();
        }
        store.insert(5, 5, Some(SHORT)).unwrap();
        let mut shard = store.write_shard(0);
        // Move 5 behind five read entries of main: the purge looks at four.
        let idx = shard.slots.len() as u32 - 1;
        shard.unlink(idx);
        shard.link_newest(idx, Queue::Main);
        for slot in &shard.slots[..5] {
            slot.freq.store(1, Relaxed);
        }
        drop(shard);
        thread::sleep(PAST_SHORT);
        store.insert(6, 6, None).unwrap();
        assert_eq!(store.stats(), stats(6, 0, 1));
        assert_eq!(store.get(&5).unwrap(), None);
        assert_consistent(&store);
    }

    #[test]
    fn write_purges_expired_oldest_entries() {
        // One shard (capacity below 512), where all six entries are in main.
        let store = MemoryStore::builder().capacity(100).ttl(SHORT).build();
        for n in 0..6u32 {
            store.insert(n, n, None).unwrap();
        }
        thread::sleep(PAST_SHORT);
        store.insert(100, 100, Some(LONG)).unwrap();
        // At most four purged per write.
        assert_eq!(store.stats(), stats(3, 0, 4));
        store.insert(101, 101, Some(LONG)).unwrap();
        // 4 and 5 purged; 100 is live, and nothing is past it.
        assert_eq!(store.stats(), stats(2, 0, 6));
    }

    #[test]
    fn replacing_a_key_does_not_grow_len() {
        let store = store(2);
        store.insert("a", 1, None).unwrap();
        store.insert("b", 2, None).unwrap();
        for n in 3..10 {
            store.insert("a", n, None).unwrap();
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.get(&"a").unwrap(), Some(9));
        assert_eq!(store.get(&"b").unwrap(), Some(2));
        assert_eq!(store.stats(), stats(2, 0, 0));
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let store = store(0);
        store.insert("a", 1, None).unwrap();
        assert_eq!(store.get(&"a").unwrap(), None);
        assert!(store.is_empty());
        assert!(!store.remove(&"a").unwrap());
        assert_eq!(store.stats(), stats(0, 0, 0));
    }

    #[test]
    fn debug_shows_configuration_without_debug_bounds() {
        struct Opaque;
        impl Clone for Opaque {
            fn clone(&self) -> Self {
                Opaque
            }
        }
        let builder = MemoryStore::<u8, Opaque>::builder()
            .capacity(5)
            .ttl(Duration::from_secs(1));
        assert_eq!(
            format!("{builder:?}"),
            "MemoryStoreBuilder { capacity: Some(5), max_bytes: None, ttl: Some(1s), tti: None }"
        );
        let store = builder.build();
        store.insert(1, Opaque, None).unwrap();
        assert_eq!(
            format!("{store:?}"),
            "MemoryStore { len: 1, capacity: Some(5), max_bytes: None, ttl: Some(1s), tti: None }"
        );
    }

    /// Walks both queues of every shard both ways and checks them against the slab and
    /// the table: every entry in exactly one queue, found by its hash at its index.
    fn assert_consistent<K: Hash + Eq + Clone + fmt::Debug, V: Clone>(store: &MemoryStore<K, V>) {
        let mut total = 0;
        for shard in store.shards.iter() {
            let shard = shard.0.read().unwrap();
            let mut seen = vec![false; shard.slots.len()];
            for (queue, list) in [(Queue::Small, shard.small), (Queue::Main, shard.main)] {
                let (mut idx, mut prev, mut len, mut weight) = (list.oldest, NIL, 0, 0);
                while idx != NIL {
                    weight += shard.weight_of(idx);
                    let slot = &shard.slots[idx as usize];
                    assert_eq!(slot.older, prev);
                    assert_eq!(slot.queue, queue);
                    assert!(!seen[idx as usize], "entry linked twice");
                    seen[idx as usize] = true;
                    assert_eq!(shard.find(slot.hash, |key| *key == slot.key), Some(idx));
                    assert_eq!(store.hash(&slot.key), slot.hash);
                    (prev, idx, len) = (idx, slot.newer, len + 1);
                }
                assert_eq!(prev, list.newest);
                assert_eq!(len, list.len);
                assert_eq!(weight, list.weight);
            }
            assert!(seen.iter().all(|&linked| linked), "entry in no queue");
            assert_eq!(shard.table.len(), shard.slots.len());
            assert!(shard.slots.len() <= shard.capacity);
            assert!(shard.weight() <= shard.max_weight);
            if shard.weighted {
                assert_eq!(shard.weights.len(), shard.slots.len());
            } else {
                assert!(shard.weights.is_empty());
            }
            if shard.timed {
                assert_eq!(shard.times.len(), shard.slots.len());
            } else {
                assert!(shard.times.is_empty());
            }
            total += shard.slots.len();
        }
        assert_eq!(store.len(), total);
    }

    #[test]
    fn queue_and_map_stay_consistent_under_mixed_operations() {
        let store = MemoryStore::builder().capacity(16).build();
        // A fixed xorshift sequence: reproducible, yet covers every operation mix.
        let mut state = 0x9e37_79b9_u32;
        for step in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let key = state % 40;
            match state % 100 {
                0 => store.clear().unwrap(),
                1..=15 => {
                    store.remove(&key).unwrap();
                }
                16..=55 => {
                    store.get(&key).unwrap();
                }
                56..=65 => {
                    // Expires at once: exercises the purge, and expiry in the eviction.
                    store
                        .insert(key, step, Some(Duration::from_nanos(1)))
                        .unwrap();
                }
                _ => store.insert(key, step, None).unwrap(),
            }
            assert!(store.len() <= 16);
            if step % 97 == 0 {
                assert_consistent(&store);
            }
        }
        assert_consistent(&store);
    }

    #[test]
    fn concurrent_inserts_and_gets_stay_bounded() {
        const THREADS: u64 = 4;
        let store = Arc::new(MemoryStore::builder().capacity(100).build());
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    for i in 0..20_000u64 {
                        // Overlapping key ranges so threads hit each other's keys.
                        let key = (i * 7 + t * 13) % 500;
                        if i % 2 == 0 {
                            store.insert(key, key * 10, None).unwrap();
                        } else if let Some(value) = store.get(&key).unwrap() {
                            assert_eq!(value, key * 10);
                        }
                        if i % 5_000 == 0 {
                            store.remove(&((key + 1) % 500)).unwrap();
                        }
                        assert!(store.len() <= 100);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert!(store.len() <= 100);
        assert_consistent(&store);
        let held = (0..500).filter(|k| store.get(k).unwrap().is_some()).count();
        assert_eq!(held, store.len());
        assert_eq!(store.stats().entries, store.len() as u64);
    }

    #[test]
    fn get_borrowed_finds_owned_keys_without_building_one() {
        let store: MemoryStore<(String, u32), u64> = MemoryStore::new();
        store.insert(("EC1A".to_owned(), 5), 42, None).unwrap();
        store
            .insert(("EC1A".to_owned(), 6), 7, Some(SHORT))
            .unwrap();
        assert_eq!(store.get_borrowed(&("EC1A", &5u32)), Some(42));
        assert_eq!(store.get_borrowed(&("EC1A", &4u32)), None);
        assert_eq!(store.get_borrowed(&("EC1", &5u32)), None);
        assert_eq!(store.get_borrowed(&("EC1A", &6u32)), Some(7));
        thread::sleep(PAST_SHORT);
        assert_eq!(store.get_borrowed(&("EC1A", &6u32)), None);
        // A borrowed hit counts as a read for the policy, like `get`.
        let hash = store.hash(&("EC1A", &5u32));
        let shard = store.read_shard(hash);
        let idx = shard
            .find(hash, |key| key.0 == "EC1A" && key.1 == 5)
            .unwrap();
        assert_eq!(shard.slots[idx as usize].freq.load(Relaxed), 1);
    }

    #[test]
    fn removal_listener_is_called_exactly_once_per_removed_entry() {
        type Events = Arc<Mutex<Vec<(u32, u32, RemovalCause)>>>;
        let events: Events = Arc::default();
        let log = Arc::clone(&events);
        let store = MemoryStore::builder()
            .capacity(3)
            .on_removal(move |key: &u32, value: &u32, cause| {
                log.lock().unwrap().push((*key, *value, cause));
            })
            .build();
        let take = || mem::take(&mut *events.lock().unwrap());

        store.insert(1, 10, None).unwrap();
        store.insert(1, 11, None).unwrap();
        assert_eq!(take(), [(1, 10, RemovalCause::Replaced)]);
        assert!(store.remove(&1).unwrap());
        assert!(!store.remove(&1).unwrap());
        assert_eq!(take(), [(1, 11, RemovalCause::Invalidated)]);

        store.insert(2, 20, Some(SHORT)).unwrap();
        store.insert(3, 30, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        // Expired and removed: reported once, as expired.
        assert!(!store.remove(&2).unwrap());
        assert_eq!(take(), [(2, 20, RemovalCause::Expired)]);
        // Expired and purged by a write.
        store.insert(4, 40, None).unwrap();
        assert_eq!(take(), [(3, 30, RemovalCause::Expired)]);

        for n in 5..9 {
            store.insert(n, n * 10, None).unwrap();
        }
        let evicted = take();
        assert_eq!(evicted.len(), 2);
        assert!(evicted.iter().all(|e| e.2 == RemovalCause::Evicted));
        assert_eq!(store.stats(), stats(3, 2, 2));

        store.clear().unwrap();
        let mut cleared = take();
        cleared.sort_unstable_by_key(|e| e.0);
        let mut expected: Vec<_> = (4..9)
            .map(|n| (n, n * 10, RemovalCause::Cleared))
            .filter(|e| !evicted.iter().any(|v| v.0 == e.0))
            .collect();
        expected.sort_unstable_by_key(|e| e.0);
        assert_eq!(cleared, expected);
        assert!(store.is_empty());
    }

    #[test]
    fn the_listener_may_use_the_store() {
        // Called with no lock held: reading and writing the store from it cannot deadlock.
        let store = Arc::new(OnceLock::<MemoryStore<u32, u32>>::new());
        let inner = Arc::clone(&store);
        let built = MemoryStore::builder()
            .capacity(1)
            .on_removal(move |key: &u32, _: &u32, _| {
                let store = inner.get().unwrap();
                assert_eq!(store.get(key).unwrap(), None);
                if *key < 3 {
                    store.insert(key + 10, 0, None).unwrap();
                }
            })
            .build();
        assert!(store.set(built).is_ok());
        let store = store.get().unwrap();
        store.insert(1, 1, None).unwrap();
        store.insert(2, 2, None).unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn capacity_is_never_exceeded_with_many_shards_and_four_threads() {
        const THREADS: u64 = 4;
        const CAPACITY: usize = 2_048;
        let removed = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&removed);
        let store = Arc::new(
            MemoryStore::builder()
                .capacity(CAPACITY)
                .on_removal(move |_: &u64, _: &u64, _| {
                    counter.fetch_add(1, Relaxed);
                })
                .build(),
        );
        assert_eq!(
            store.shards.len(),
            (default_shard_count()).min(CAPACITY / MIN_SHARD_CAPACITY)
        );
        let inserts = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                let inserts = Arc::clone(&inserts);
                thread::spawn(move || {
                    barrier.wait();
                    let mut state = 0x2545_f491 + t;
                    for _ in 0..30_000 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let key = state % 10_000;
                        match state % 10 {
                            0 => {
                                store.remove(&key).unwrap();
                            }
                            1..=4 => {
                                if let Some(value) = store.get(&key).unwrap() {
                                    assert_eq!(value, key * 10);
                                }
                            }
                            _ => {
                                store.insert(key, key * 10, None).unwrap();
                                inserts.fetch_add(1, Relaxed);
                            }
                        }
                        assert!(store.len() <= CAPACITY);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_consistent(&store);
        let held = (0..10_000)
            .filter(|k| store.get(k).unwrap().is_some())
            .count();
        assert_eq!(held, store.len());
        assert!(store.len() <= CAPACITY);
        store.clear().unwrap();
        // Every insert either added an entry, which has now left exactly once, or
        // replaced a value, reported once as `Replaced`: one call per insert.
        assert_eq!(store.len(), 0);
        assert_eq!(removed.load(Relaxed), inserts.load(Relaxed));
    }

    /// A store bounded to `max_bytes`, whose entries weigh the length of their value.
    fn by_length(max_bytes: u64) -> MemoryStoreBuilder<u32, String> {
        MemoryStore::builder()
            .max_bytes(max_bytes)
            .weigher(|_: &u32, value: &String| value.len() as u32)
    }

    /// The sum of the weights of the entries a read finds, for keys below `keys`.
    fn held_weight(store: &MemoryStore<u32, String>, keys: u32) -> u64 {
        (0..keys)
            .filter_map(|key| store.get(&key).unwrap())
            .map(|value| value.len() as u64)
            .sum()
    }

    #[test]
    fn max_bytes_holds_after_many_inserts_of_different_weights() {
        let store = by_length(1_000).build();
        let mut state = 0x2545_f491_u32;
        for step in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let key = state % 300;
            store
                .insert(key, "x".repeat((state % 120) as usize), None)
                .unwrap();
            if step % 3 == 0 {
                store.get(&(key / 2)).unwrap();
            }
            assert!(store.weighted_size() <= 1_000, "after insert {step}");
            if step % 101 == 0 {
                assert_consistent(&store);
            }
        }
        assert_consistent(&store);
        assert_eq!(held_weight(&store, 300), store.weighted_size());
        // Full to within one entry of the bound: only what did not fit was evicted.
        assert!(store.weighted_size() > 1_000 - 120);
        assert!(store.stats().evictions > 0);
    }

    #[test]
    fn max_bytes_is_split_between_shards_and_never_exceeded() {
        const MAX: u64 = 1 << 20;
        let store = MemoryStore::builder()
            .max_bytes(MAX)
            .weigher(|_: &u64, value: &Vec<u8>| value.len() as u32)
            .build();
        assert_eq!(
            store.shards.len(),
            default_shard_count().min((MAX / MIN_SHARD_WEIGHT) as usize)
        );
        for n in 0..20_000u64 {
            store.insert(n, vec![0; (n % 500) as usize], None).unwrap();
        }
        assert!(store.weighted_size() <= MAX);
        assert!(store.weighted_size() > MAX / 2);
        assert_consistent(&store);
    }

    #[test]
    fn replacing_an_entry_adjusts_the_weight() {
        let store = by_length(100).build();
        store.insert(1, "x".repeat(10), None).unwrap();
        store.insert(2, "x".repeat(30), None).unwrap();
        store.insert(1, "x".repeat(3), None).unwrap();
        assert_eq!(store.weighted_size(), 33);
        store.insert(1, "x".repeat(50), None).unwrap();
        assert_eq!(store.weighted_size(), 80);
        assert_eq!(store.len(), 2);
        assert_eq!(store.stats(), stats(2, 0, 0));
        // A heavier value that no longer fits: room is made by the same order, here by
        // evicting 1, the oldest unread entry, itself.
        store.insert(3, "x".repeat(20), None).unwrap();
        store.insert(1, "x".repeat(60), None).unwrap();
        assert_eq!(store.weighted_size(), 50);
        assert_eq!(store.get(&1).unwrap(), None);
        assert_eq!(held_weight(&store, 4), store.weighted_size());
        assert_eq!(store.stats().evictions, 1);
        assert_consistent(&store);
    }

    #[test]
    fn an_entry_heavier_than_the_budget_is_not_stored() {
        type Events = Arc<Mutex<Vec<(u32, usize, RemovalCause)>>>;
        let events: Events = Arc::default();
        let log = Arc::clone(&events);
        let store = by_length(100)
            .on_removal(move |key: &u32, value: &String, cause| {
                log.lock().unwrap().push((*key, value.len(), cause));
            })
            .build();
        store.insert(1, "x".repeat(101), None).unwrap();
        assert_eq!(store.get(&1).unwrap(), None);
        assert!(store.is_empty());
        assert_eq!(store.weighted_size(), 0);
        // Exactly the budget fits.
        store.insert(1, "x".repeat(100), None).unwrap();
        assert_eq!(store.weighted_size(), 100);
        // Too heavy under a held key: the old value goes too, reported as replaced.
        store.insert(1, "x".repeat(101), None).unwrap();
        assert_eq!(store.get(&1).unwrap(), None);
        assert!(store.is_empty());
        assert_eq!(store.weighted_size(), 0);
        assert_eq!(store.stats(), stats(0, 0, 0));
        assert_eq!(*events.lock().unwrap(), [(1, 100, RemovalCause::Replaced)]);
        assert_consistent(&store);
    }

    #[test]
    fn weight_returns_to_zero_after_removals_expirations_and_clear() {
        let store = by_length(1_000).build();
        for n in 0..10 {
            store.insert(n, "x".repeat(n as usize), None).unwrap();
        }
        assert_eq!(store.weighted_size(), 45);
        assert!(store.remove(&9).unwrap());
        assert!(store.remove(&4).unwrap());
        assert_eq!(store.weighted_size(), 32);
        store.clear().unwrap();
        assert_eq!(store.weighted_size(), 0);
        for n in 0..10 {
            store
                .insert(n, "x".repeat(n as usize), Some(SHORT))
                .unwrap();
        }
        thread::sleep(PAST_SHORT);
        // Expired entries weigh until they are purged: by a remove, by writes.
        assert!(!store.remove(&9).unwrap());
        assert_eq!(store.weighted_size(), 36);
        for _ in 0..3 {
            store.insert(100, String::new(), None).unwrap();
        }
        assert_eq!(store.weighted_size(), 0);
        assert_eq!(store.len(), 1);
        assert_eq!(store.stats(), stats(1, 0, 10));
        assert!(store.remove(&100).unwrap());
        assert_eq!(store.weighted_size(), 0);
        assert_consistent(&store);
    }

    #[test]
    fn the_listener_is_called_once_per_entry_evicted_for_weight() {
        type Events = Arc<Mutex<Vec<(u32, RemovalCause)>>>;
        let events: Events = Arc::default();
        let log = Arc::clone(&events);
        let store = by_length(100)
            .on_removal(move |key: &u32, _: &String, cause| {
                log.lock().unwrap().push((*key, cause));
            })
            .build();
        let take = || mem::take(&mut *events.lock().unwrap());
        for n in 0..20 {
            store.insert(n, "x".repeat(10), None).unwrap();
        }
        let mut evicted = take();
        assert_eq!(evicted.len(), 10);
        assert!(evicted.iter().all(|e| e.1 == RemovalCause::Evicted));
        // One heavy entry evicts several in one insert, each reported once.
        store.insert(100, "x".repeat(50), None).unwrap();
        let more = take();
        assert_eq!(more.len(), 5);
        assert!(more.iter().all(|e| e.1 == RemovalCause::Evicted));
        evicted.extend(more);
        let mut keys: Vec<u32> = evicted.iter().map(|e| e.0).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 15);
        assert!(keys.iter().all(|key| store.get(key).unwrap().is_none()));
        assert_eq!(store.stats(), stats(6, 15, 0));
        assert_eq!(store.weighted_size(), 100);
    }

    #[test]
    fn one_hit_wonders_cycle_through_the_small_queue_by_weight() {
        // Main fills up to 97% of the weight (97 entries of 10), new keys then go to the
        // small queue and evict each other there.
        let store = by_length(1_000).build();
        for n in 0..97 {
            store.insert(n, "x".repeat(10), None).unwrap();
        }
        for n in 1_000..1_200 {
            store.insert(n, "x".repeat(10), None).unwrap();
        }
        assert!((0..97).all(|n| store.get(&n).unwrap().is_some()));
        assert_eq!(store.weighted_size(), 1_000);
        assert_consistent(&store);
    }

    #[test]
    fn max_bytes_without_a_weigher_counts_the_shallow_size() {
        let store = MemoryStore::<u64, u64>::builder()
            .max_bytes(16 * 10)
            .build();
        for n in 0..100 {
            store.insert(n, n, None).unwrap();
        }
        assert_eq!(store.len(), 10);
        assert_eq!(store.weighted_size(), 160);
        assert_eq!(store.max_bytes(), Some(160));
    }

    #[test]
    fn capacity_and_max_bytes_both_hold() {
        let store = by_length(1_000).capacity(5).build();
        for n in 0..20 {
            store.insert(n, "x".repeat(10), None).unwrap();
        }
        assert_eq!(store.len(), 5);
        // Heavy keys: the weight bounds them to three, while the light keys in main are
        // protected from these one-time keys.
        for n in 20..40 {
            store.insert(n, "x".repeat(300), None).unwrap();
            assert!(store.len() <= 5);
            assert!(store.weighted_size() <= 1_000);
        }
        let heavy = (20..40).filter(|n| store.get(n).unwrap().is_some()).count();
        assert!((1..=3).contains(&heavy), "{heavy} heavy entries held");
        assert_eq!(held_weight(&store, 40), store.weighted_size());
        assert_consistent(&store);
    }

    #[test]
    fn a_weigher_alone_sums_weights_without_bounding() {
        let store = MemoryStore::builder()
            .weigher(|_: &u32, value: &String| value.len() as u32)
            .build();
        for n in 0..1_000 {
            store.insert(n, "x".repeat(100), None).unwrap();
        }
        assert_eq!(store.len(), 1_000);
        assert_eq!(store.weighted_size(), 100_000);
        assert_eq!(store.max_bytes(), None);
        // A store without weights does not weigh.
        let plain = MemoryStore::new();
        plain.insert(1, "x".repeat(100), None).unwrap();
        assert_eq!(plain.weighted_size(), 0);
        assert!(plain
            .shards
            .iter()
            .all(|s| s.0.read().unwrap().weights.is_empty()));
    }
}
