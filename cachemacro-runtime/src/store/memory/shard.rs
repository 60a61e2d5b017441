//! One shard: an independent S3-FIFO cache over a slab of entries, a hash table of their
//! indices, a ghost table of recently evicted hashes and the admission tests of new keys:
//! those that come back, and those the ghost does not remember.

use std::sync::atomic::Ordering::Relaxed;

use hashbrown::HashTable;

use super::ghost::Ghost;
use super::probation::ProbationHits;
use super::reads::ReadBuffer;
use super::removal::{RemovalCause, Removed};
use super::sketch::FrequencySketch;
use super::slab::{Queue, Slab, Slot, Times, NIL};
use super::trials::{Decision, Marks, Trials};

/// How many of the oldest entries each insert checks for expiry. Small and constant so a
/// write never pays for a large backlog; steady writes still drain expired entries faster
/// than they can pile up, since each insert adds one entry and may purge up to this many.
const PURGE_PER_WRITE: usize = 4;

/// The small (probationary) FIFO's share of a shard, in `1 / SHARE_ONE` units, at the
/// start: 3% (`quick_cache`'s default). Returning keys then move it (see `Shard::adapt`).
const INITIAL_SMALL_SHARE: u32 = SHARE_ONE * 3 / 100;

/// The bounds of the small queue's share: it never vanishes (new keys need a probation
/// to be told from one-hit wonders) and never takes the whole shard (main must keep
/// room for the keys that proved themselves).
const MIN_SMALL_SHARE: u32 = SHARE_ONE / 100;
const MAX_SMALL_SHARE: u32 = SHARE_ONE * 90 / 100;

/// Fixed-point unit of a share of the shard.
const SHARE_ONE: u32 = 1 << 16;
const HALF_SHARE: u64 = 1 << 15;

/// How many counts more than main's victim the sketch must give a key the ghost does not
/// remember for it to skip probation. Measured: one admits too many keys that are only
/// somewhat more frequent, which costs small caches on frequency-heavy workloads (Zipf 0.8
/// at 1% -0.4, a disk trace at 2 000 entries -0.2); two keeps those and gains from 0.1 to
/// 1 point on the disk trace from 2 000 to 32 768 entries; more gains nothing.
const UNREMEMBERED_MARGIN: u8 = 2;

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
    /// Direct-mapped ghost table of recently evicted keys (see `Ghost`); allocated at the
    /// first eviction.
    ghost: Ghost,
    /// Recent frequency of the keys missed and of the entries read; allocated at the
    /// first eviction.
    sketch: FrequencySketch,
    /// The hits since the last write, which that write adds to the sketch.
    reads: ReadBuffer,
    /// One ledger per [`Decision`]: how many of its candidates are admitted.
    ledgers: [Trials; 3],
    /// How long the small queue has gone without a hit.
    probation: ProbationHits,
    pub(super) capacity: usize,
    /// False for an unbounded shard: everything goes to main, which is then never evicted.
    bounded: bool,
    /// Bound on the sum of the weights; `u64::MAX` without `max_bytes`.
    pub(super) max_weight: u64,
    /// The small queue's target share of the shard (of its entries and of its weight), in
    /// `1 / SHARE_ONE` units.
    small_share: u32,
    /// Set at the first eviction: from then on new keys go through the small queue even
    /// while main is below its target.
    filled: bool,
}

impl<K, V> Shard<K, V> {
    /// A shard bounded by `capacity` entries if `bounded`, and by `max_weight` if some.
    pub(super) fn new(
        capacity: usize,
        bounded: bool,
        weighted: bool,
        max_weight: Option<u64>,
    ) -> Self {
        Shard {
            table: HashTable::new(),
            slab: Slab::new(weighted),
            ghost: Ghost::default(),
            sketch: FrequencySketch::default(),
            reads: ReadBuffer::default(),
            ledgers: new_ledgers(),
            probation: ProbationHits::default(),
            capacity,
            bounded: bounded || max_weight.is_some(),
            max_weight: max_weight.unwrap_or(u64::MAX),
            small_share: INITIAL_SMALL_SHARE,
            filled: false,
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

    /// Appends a new entry where `placement` says. The caller has made room (`!is_full_for(weight)`)
    /// and checked that the key is absent.
    pub(super) fn push(
        &mut self,
        key: K,
        value: V,
        hash: u32,
        weight: u32,
        times: Times,
        placement: Placement,
    ) {
        self.slab.reserve_one(self.capacity);
        let idx = self
            .slab
            .push(key, value, hash, weight, times, placement.queue);
        self.slab.slots[idx as usize].marks = placement.marks;
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

    /// Remembers that the key of `hash` was just evicted from `queue`, and which
    /// admissions displaced it.
    fn ghost_insert(&mut self, hash: u32, queue: Queue, displaced: Marks) {
        if self.ghost.is_empty() {
            // Sized by the entries the shard holds at its first eviction: its capacity
            // when bounded by entries, and an estimate of how many fit when bounded by
            // weight (whose entry capacity is the unbounded maximum).
            let len = self.slab.slots.len().clamp(1, self.capacity.max(1));
            self.ghost = Ghost::with_len(len);
            self.sketch = FrequencySketch::with_entries(len);
        }
        self.ghost.insert(hash, queue, displaced);
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
        self.filled = true;
        // Terminates: the shard's write lock keeps readers from raising frequencies, and
        // every promotion shrinks the small queue.
        while self.slab.small.len > 0 && !self.main_over_target() {
            // Read while on probation: promoted to main, at the cost of one level.
            if self.examine_oldest(Queue::Small, now, tti, removed) {
                return true;
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
            if self.examine_oldest(Queue::Main, now, tti, removed) {
                return true;
            }
        }
        false
    }

    /// The oldest entry of `queue`: removed when expired, or when unread since it was last
    /// examined (answering `true`: one entry is gone); otherwise moved to main's tail with
    /// one frequency level less (`false`).
    fn examine_oldest(
        &mut self,
        queue: Queue,
        now: u64,
        tti: Option<u64>,
        removed: &mut Removed<K, V>,
    ) -> bool {
        let idx = match queue {
            Queue::Small => self.slab.small.oldest,
            Queue::Main => self.slab.main.oldest,
        };
        if self.slab.is_expired(idx, now, tti) {
            let (key, value) = self.take(idx);
            removed.push(key, value, RemovalCause::Expired);
            return true;
        }
        let slot = &self.slab.slots[idx as usize];
        let (freq, hash) = (slot.freq.load(Relaxed), slot.hash);
        if queue == Queue::Small {
            self.probation.depart(freq > 0);
        }
        if freq == 0 {
            let displaced = slot.marks.displacements();
            self.ghost_insert(hash, queue, displaced);
            let (key, value) = self.take(idx);
            removed.push(key, value, RemovalCause::Evicted);
            return true;
        }
        slot.freq.store(freq - 1, Relaxed);
        if queue == Queue::Main {
            self.settle_trial(idx);
        }
        self.slab.unlink(idx);
        self.slab.link_newest(idx, Queue::Main);
        false
    }

    /// Main's clock found entry `idx` read: the admission that let it in paid; an
    /// admission that displaced it did not cost it, as it was read before it had to
    /// leave, so its eviction, whenever it comes, is no longer that admission's doing.
    fn settle_trial(&mut self, idx: u32) {
        let marks = self.slab.slots[idx as usize].marks.settle();
        for decision in Decision::ALL {
            if marks.is_admitted_by(decision) {
                self.ledgers[decision as usize].paid();
            }
        }
    }

    /// Gives main's oldest entries their second chances until the oldest is unread: that
    /// one is the entry the next eviction from main takes, the victim an admission test
    /// must weigh a candidate against. Amortised O(1): every step lowers a frequency that
    /// a hit raised, and a hit raises it by one at most.
    fn advance_main_clock(&mut self) {
        for _ in 0..self.slab.main.len {
            let idx = self.slab.main.oldest;
            let slot = &self.slab.slots[idx as usize];
            let freq = slot.freq.load(Relaxed);
            if freq == 0 {
                break;
            }
            slot.freq.store(freq - 1, Relaxed);
            self.settle_trial(idx);
            self.slab.unlink(idx);
            self.slab.link_newest(idx, Queue::Main);
        }
    }

    /// Whether main holds more than its share, in entries or in weight.
    fn main_over_target(&self) -> bool {
        self.slab.main.len > self.main_capacity() || self.slab.main.weight > self.main_max_weight()
    }

    /// Main's share of the entries: what the small queue's share leaves.
    fn main_capacity(&self) -> usize {
        // Rounded to the nearest entry: the share is a fraction of `SHARE_ONE`, and 3% of
        // 100 entries must be 3, not 2.
        let small = ((self.capacity as u64 * u64::from(self.small_share) + HALF_SHARE)
            / u64::from(SHARE_ONE))
        .max(1) as usize;
        self.capacity - small.min(self.capacity)
    }

    /// Main's share of the weight.
    fn main_max_weight(&self) -> u64 {
        let small = ((u128::from(self.max_weight) * u128::from(self.small_share)
            + u128::from(HALF_SHARE))
            / u128::from(SHARE_ONE)) as u64;
        self.max_weight - small
    }

    /// Moves the boundary between the queues after a ghost hit, as ARC moves its target
    /// (Megiddo and Modha, FAST '03): a key evicted from the small queue that comes back
    /// says the small queue was too short to see its second use, so the small queue
    /// grows; one evicted from main says main was too short, so main grows. The step is
    /// one entry, times the ratio of the other ghost's population to this one's, so that
    /// the rarer signal weighs as much as the frequent one. Except that the small queue
    /// does not grow while it has long caught no second use: then its length is not what
    /// keeps such keys from being read there (a loop larger than the cache comes back
    /// after any length of it), and every step would take main's room for nothing.
    fn adapt(&mut self, evicted_from: Queue) {
        if evicted_from == Queue::Small && self.probation.growth_unearned() {
            return;
        }
        let (this, other) = match evicted_from {
            Queue::Small => (self.ghost.small, self.ghost.main),
            Queue::Main => (self.ghost.main, self.ghost.small),
        };
        let entries = (other / this.max(1)).max(1) as u64;
        let step =
            (entries * u64::from(SHARE_ONE) / self.held()).clamp(1, u64::from(SHARE_ONE)) as u32;
        self.small_share = match evicted_from {
            Queue::Small => self.small_share.saturating_add(step).min(MAX_SMALL_SHARE),
            Queue::Main => self.small_share.saturating_sub(step).max(MIN_SMALL_SHARE),
        };
    }

    /// How many entries the shard holds when full, which the boundary's steps are
    /// relative to: its capacity if bounded by entries, how many fit if bounded by weight.
    fn held(&self) -> u64 {
        (self.slab.slots.len().max(1) as u64).min(self.capacity as u64)
    }

    /// Moves the boundary toward main after a key the ghost did not remember entered main
    /// by its count: main, not probation, is where such keys pay, so main grows, as it
    /// does when a key comes back from main's ghost. By half an entry rather than ARC's
    /// step: these admissions come once per frequent key, not once per ghost return, and
    /// a whole entry starves the small queue of small caches. Measured on the disk trace:
    /// half an entry gains 0.2 to 0.6 point from 15 000 to 32 768 entries with the rest
    /// unchanged; a whole entry, 0.3 point less at 1 000 entries; ARC's ratio-scaled step,
    /// 1.2 points less on the database trace at 1 000; a quarter, half the gain.
    fn grow_main_by_half_an_entry(&mut self) {
        let step = (HALF_SHARE / self.held()).max(1) as u32;
        self.small_share = self.small_share.saturating_sub(step).max(MIN_SMALL_SHARE);
    }

    /// TinyLFU's admission test: whether a key has been seen more often than main's
    /// victim, which it would push out, or else is admitted on trial. Main's clock is
    /// advanced first, so the victim is the entry the next eviction from main would
    /// really take, not a read entry due for a second chance. Hits reach the sketch
    /// through the read buffer, so a resident key's count is its popularity, not only its
    /// misses. On a loop larger than the cache every key ties and none displaces another,
    /// so main keeps its keys instead of cycling them all out; trials there cost as much
    /// as they pay, so they stay rare.
    ///
    /// A tie is one count in the candidate's favour, though, since its miss has just
    /// counted it while the victim's turn is still to come: on a loop that admits keys
    /// that displace the very keys due next, which come back, displace the next ones, and
    /// so on, a miss each, at a point and a half of hit ratio at 10% of the loop's keys.
    /// So while the shard looks like a loop (`looks_like_a_loop`), a candidate only one
    /// count ahead is admitted at the share its own ledger sets (`Decision::Narrow`).
    fn admission(&mut self, hash: u32) -> Option<Placement> {
        self.advance_main_clock();
        let victim = self.slab.main.oldest;
        if victim == NIL {
            return Some(Placement::MAIN);
        }
        let victim_hash = self.slab.slots[victim as usize].hash;
        let (frequency, victim_frequency) = (
            self.sketch.frequency(hash),
            self.sketch.frequency(victim_hash),
        );
        if frequency > victim_frequency {
            if frequency > victim_frequency + 1 || !self.looks_like_a_loop() {
                return Some(Placement::MAIN);
            }
            if self.ledgers[Decision::Narrow as usize].admits(hash) {
                self.slab.slots[victim as usize]
                    .marks
                    .displace_by(Decision::Narrow);
                return Some(Placement::admitted_by(Decision::Narrow));
            }
        }
        if self.ledgers[Decision::Refused as usize].admits(hash) {
            self.slab.slots[victim as usize]
                .marks
                .displace_by(Decision::Refused);
            return Some(Placement::admitted_by(Decision::Refused));
        }
        None
    }

    /// Whether the shard cycles through keys as a loop larger than the cache does: its
    /// small queue has lately caught no second use, and most misses are keys the ghost
    /// remembers. Either alone is not enough: on the disk trace at 160 000 entries each
    /// holds in some phases, and the narrow ledger asked on either alone cost that row 0.2
    /// to 0.5 point (asked always, 0.9).
    pub(super) fn looks_like_a_loop(&self) -> bool {
        self.probation.caught_nothing_lately() && !self.ghost.forgets_most_misses()
    }

    /// Whether a key the ghost does not remember enters main at once, as W-TinyLFU admits
    /// every key leaving its window: the sketch must rate it more than `UNREMEMBERED_MARGIN`
    /// counts above main's victim (see `admission`), and its ledger must not have found
    /// such admissions costing more than they earned. Asked only while most misses are
    /// keys the ghost has forgotten or never saw: then a key the sketch rates high is one
    /// that comes back at reuse distances longer than the ghost's memory, which probation
    /// in the small queue cannot tell from a one-hit wonder, whereas where most misses
    /// are ghost returns (a loop a little larger than the cache), a key the ghost lost is
    /// a collision in it and the returning keys' own test already judges the workload.
    fn unremembered_admission(&mut self, hash: u32) -> Option<Placement> {
        // Most candidates were just counted for the first time: they cannot pass, and
        // skipping them spares the victim's counters, which are rarely in cache.
        let frequency = self.sketch.frequency(hash);
        if frequency <= UNREMEMBERED_MARGIN || !self.ghost.forgets_most_misses() {
            return None;
        }
        self.advance_main_clock();
        let victim = self.slab.main.oldest;
        if victim == NIL {
            return None;
        }
        let victim_hash = self.slab.slots[victim as usize].hash;
        let victim_frequency = self.sketch.frequency(victim_hash);
        if frequency <= victim_frequency.saturating_add(UNREMEMBERED_MARGIN)
            || !self.ledgers[Decision::Unremembered as usize].admits(hash)
        {
            return None;
        }
        self.slab.slots[victim as usize]
            .marks
            .displace_by(Decision::Unremembered);
        Some(Placement::admitted_by(Decision::Unremembered))
    }

    /// Leaves a hit on the entry of `hash` for the sketch. Before the shard's first
    /// eviction there is no sketch and no admission test to feed.
    pub(super) fn record_read(&self, hash: u32) {
        if self.filled {
            self.reads.record(hash);
        }
    }

    /// The queue the key of `hash` was recently evicted from, if the ghost remembers it
    /// (and forgets it now): asked for a new key before any eviction makes room for it.
    /// A key displaced by one admitted on trial counts that trial's cost here.
    pub(super) fn recall(&mut self, hash: u32) -> Option<Queue> {
        if !self.bounded {
            return None;
        }
        let (queue, displaced) = self.ghost.take(hash)?;
        for decision in Decision::ALL {
            if displaced.is_displaced_by(decision) {
                self.ledgers[decision as usize].cost();
            }
        }
        Some(queue)
    }

    /// Where a new key enters: main if the key was evicted recently (`recalled`, from
    /// [`recall`](Shard::recall)) and outranks main's victim or is admitted on trial (or
    /// the store is unbounded), or while main is still filling up; else small.
    pub(super) fn placement_for_new(&mut self, hash: u32, recalled: Option<Queue>) -> Placement {
        if !self.bounded {
            return Placement::MAIN;
        }
        if self.filled {
            let sketch = &mut self.sketch;
            self.reads.drain(|read| sketch.increment(read));
            self.ghost.count_miss(recalled.is_some());
        }
        self.sketch.increment(hash);
        if let Some(evicted_from) = recalled {
            // Only a returning key that main admits moves the boundary: on a loop, where
            // every key ties, the small queue would otherwise grow into a FIFO of the
            // whole shard, which a loop larger than it empties every lap.
            if let Some(placement) = self.admission(hash) {
                self.adapt(evicted_from);
                return placement;
            }
        }
        if recalled.is_none() && self.filled {
            if let Some(placement) = self.unremembered_admission(hash) {
                self.grow_main_by_half_an_entry();
                return placement;
            }
        }
        let main_filling = !self.filled
            && self.slab.main.len < self.main_capacity()
            && self.slab.main.weight < self.main_max_weight();
        if main_filling {
            Placement::MAIN
        } else {
            Placement::SMALL
        }
    }

    /// The small queue's target share, in `1 / 65 536` units, for tests of the boundary.
    #[cfg(test)]
    pub(super) fn small_share(&self) -> u32 {
        self.small_share
    }

    /// The share of refused returning keys admitted on trial, for tests.
    #[cfg(test)]
    pub(super) fn trial_level(&self) -> u32 {
        self.ledgers[Decision::Refused as usize].level()
    }

    /// The sketch's count for `hash`, for tests of the admission test's inputs.
    #[cfg(test)]
    pub(super) fn frequency(&self, hash: u32) -> u8 {
        self.sketch.frequency(hash)
    }

    /// Empties the shard and returns its entries, to be reported with no lock held.
    pub(super) fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.table.clear();
        self.ghost = Ghost::default();
        self.sketch = FrequencySketch::default();
        self.reads = ReadBuffer::default();
        self.ledgers = new_ledgers();
        self.probation = ProbationHits::default();
        self.filled = false;
        self.small_share = INITIAL_SMALL_SHARE;
        self.slab.clear()
    }
}

/// A fresh ledger per [`Decision`], indexed by it.
fn new_ledgers() -> [Trials; 3] {
    Decision::ALL.map(Trials::new)
}

/// Where a new entry goes: its queue, and whether it enters main on trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placement {
    pub(super) queue: Queue,
    pub(super) marks: Marks,
}

impl Placement {
    const MAIN: Placement = Placement {
        queue: Queue::Main,
        marks: Marks::NONE,
    };
    const SMALL: Placement = Placement {
        queue: Queue::Small,
        marks: Marks::NONE,
    };

    const fn admitted_by(decision: Decision) -> Placement {
        Placement {
            queue: Queue::Main,
            marks: Marks::admitted_by(decision),
        }
    }
}
