//! The dense entries of one shard and the two FIFOs threaded through them.
//!
//! Entries live in one `Vec`, addressed by `u32`; removing one moves the last entry into
//! its place, so the vector stays dense and holds nothing but live entries. Queues are
//! doubly linked through the entries' `older`/`newer` indices instead of being separate
//! allocations. Expiry stamps and weights are side vectors parallel to the entries, kept
//! only once a shard needs them.

use std::mem;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use super::trials::Marks;

/// "No entry": the end of a queue.
pub(super) const NIL: u32 = u32::MAX;

/// Entries are addressed by `u32` within a shard, which bounds a shard, including one of
/// an "unbounded" store, to `u32::MAX - 1` entries (about four billion per shard: far
/// more than fits in memory for any useful entry size).
pub(super) const MAX_SHARD_ENTRIES: usize = (NIL - 1) as usize;

/// Which FIFO an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    Small,
    Main,
}

/// One entry: for `u64 -> u64`, 16 bytes of key and value and 13 of metadata, 32 with
/// padding. Expiry stamps are kept apart (`Slab::times`) so that entries without expiry
/// do not pay for them.
pub(super) struct Slot<K, V> {
    pub(super) key: K,
    pub(super) value: V,
    /// The key's folded hash, so the policy can find the table's index without hashing.
    pub(super) hash: u32,
    /// Neighbours in the entry's queue (toward the head and toward the tail).
    pub(super) older: u32,
    pub(super) newer: u32,
    /// S3-FIFO frequency, raised by readers under the shard's read lock.
    pub(super) freq: AtomicU8,
    pub(super) queue: Queue,
    /// The admissions whose outcome this entry will tell (see `trials`): by which the
    /// entry was admitted and has not been read in main since, and by which it was
    /// displaced (its return costs that admission).
    pub(super) marks: Marks,
}

/// Expiry stamps of one entry, in nanoseconds since the store's base.
pub(super) struct Times {
    /// When the entry expires; 0 = never.
    pub(super) expires_at: u64,
    /// Last read or write; only consulted when the store has a time to idle. Readers
    /// update it under the shard's read lock.
    pub(super) last_read: AtomicU64,
}

impl Times {
    pub(super) fn new(expires_at: u64, now: u64) -> Self {
        Times {
            expires_at,
            last_read: AtomicU64::new(now),
        }
    }

    pub(super) fn is_expired(&self, now: u64, tti: Option<u64>) -> bool {
        (self.expires_at != 0 && now >= self.expires_at)
            || tti.is_some_and(|tti| now.saturating_sub(self.last_read.load(Relaxed)) >= tti)
    }
}

/// A FIFO threaded through the slots' `older`/`newer` links.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    pub(super) oldest: u32,
    pub(super) newest: u32,
    pub(super) len: usize,
    /// Sum of the entries' weights; always 0 in a store without weights.
    pub(super) weight: u64,
}

impl List {
    pub(super) const EMPTY: List = List {
        oldest: NIL,
        newest: NIL,
        len: 0,
        weight: 0,
    };
}

/// The entries of one shard, their side vectors and the small and main FIFOs.
pub(super) struct Slab<K, V> {
    pub(super) slots: Vec<Slot<K, V>>,
    /// Parallel to `slots` once `timed` is set; empty before.
    pub(super) times: Vec<Times>,
    /// Some entry of this shard has had expiry stamps (kept until `clear`).
    pub(super) timed: bool,
    /// Parallel to `slots` in a weighted store; always empty otherwise.
    pub(super) weights: Vec<u32>,
    /// The store weighs its entries (set at construction).
    pub(super) weighted: bool,
    pub(super) small: List,
    pub(super) main: List,
}

impl<K, V> Slab<K, V> {
    pub(super) fn new(weighted: bool) -> Self {
        Slab {
            slots: Vec::new(),
            times: Vec::new(),
            timed: false,
            weights: Vec::new(),
            weighted,
            small: List::EMPTY,
            main: List::EMPTY,
        }
    }

    pub(super) fn weight_of(&self, idx: u32) -> u64 {
        self.weights.get(idx as usize).map_or(0, |&w| u64::from(w))
    }

    /// Sum of the weights of the entries.
    pub(super) fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }

    /// Changes the weight of entry `idx`, in place.
    pub(super) fn set_weight(&mut self, idx: u32, weight: u32) {
        if let Some(stored) = self.weights.get_mut(idx as usize) {
            let old = mem::replace(stored, weight);
            let queue = self.slots[idx as usize].queue;
            let list = self.list_mut(queue);
            list.weight = list.weight - u64::from(old) + u64::from(weight);
        }
    }

    pub(super) fn is_expired(&self, idx: u32, now: u64, tti: Option<u64>) -> bool {
        self.times
            .get(idx as usize)
            .is_some_and(|times| times.is_expired(now, tti))
    }

    /// Starts keeping expiry stamps for every entry.
    pub(super) fn enable_times(&mut self, now: u64) {
        if !self.timed {
            self.timed = true;
            self.times.reserve_exact(self.slots.capacity());
            self.times
                .extend(self.slots.iter().map(|_| Times::new(0, now)));
        }
    }

    pub(super) fn list_mut(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    pub(super) fn link_newest(&mut self, idx: u32, queue: Queue) {
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

    pub(super) fn unlink(&mut self, idx: u32) {
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

    /// Makes room for one more entry in the slots and their side vectors.
    pub(super) fn reserve_one(&mut self, capacity: usize) {
        if self.slots.len() == self.slots.capacity() {
            // Doubling, but never past the capacity: a full bounded shard has no slack.
            let len = self.slots.len();
            let target = len.saturating_mul(2).max(8).min(capacity).max(len + 1);
            self.slots.reserve_exact(target - len);
        }
        if self.timed {
            self.times
                .reserve_exact(self.slots.capacity() - self.times.len());
        }
        if self.weighted {
            self.weights
                .reserve_exact(self.slots.capacity() - self.weights.len());
        }
    }

    /// Appends a new entry as the newest of `queue` and returns its index.
    pub(super) fn push(
        &mut self,
        key: K,
        value: V,
        hash: u32,
        weight: u32,
        times: Times,
        queue: Queue,
    ) -> u32 {
        let idx = self.slots.len() as u32;
        self.slots.push(Slot {
            key,
            value,
            hash,
            older: NIL,
            newer: NIL,
            freq: AtomicU8::new(0),
            queue,
            marks: Marks::NONE,
        });
        if self.timed {
            self.times.push(times);
        }
        if self.weighted {
            self.weights.push(weight);
        }
        self.link_newest(idx, queue);
        idx
    }

    /// Removes entry `idx` from its queue and the slab; the last entry moves into its
    /// place, keeping its queue position.
    pub(super) fn swap_remove(&mut self, idx: u32) -> Slot<K, V> {
        self.unlink(idx);
        let last = (self.slots.len() - 1) as u32;
        if idx != last {
            let moved = &self.slots[last as usize];
            let (older, newer, queue) = (moved.older, moved.newer, moved.queue);
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
        self.slots.swap_remove(idx as usize)
    }

    /// Empties the slab and returns its entries; the side vectors' memory is released.
    pub(super) fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.times = Vec::new();
        self.timed = false;
        self.weights = Vec::new();
        self.small = List::EMPTY;
        self.main = List::EMPTY;
        mem::take(&mut self.slots)
    }
}
