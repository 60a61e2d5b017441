//! The ghost of a shard: the hashes of recently evicted keys, what displaced them, and how
//! many misses it recognises.

use super::slab::Queue;
use super::trials::Marks;

/// A direct-mapped table of the hashes of recently evicted keys, each tagged with the
/// queue it was evicted from and the admissions that displaced it. A collision overwrites
/// the older hash, which approximates the paper's FIFO ghost queue at 4 bytes per slot and
/// no bookkeeping. The slot index is the hash's low bits, so the four lowest bits are
/// implied by the slot and can hold the tags.
#[derive(Default)]
pub(super) struct Ghost {
    /// 0 = empty; otherwise the hash with its four lowest bits replaced by the tags (bit
    /// 0: evicted from small; bits 1 to 3: displaced by a refused key on trial, by an
    /// unremembered key, by a narrow admission).
    slots: Box<[u32]>,
    /// Slots holding a key evicted from the small queue, and from main.
    pub(super) small: u32,
    pub(super) main: u32,
    /// Recent misses, and how many of them were keys found here (see
    /// [`forgets_most_misses`](Ghost::forgets_most_misses)).
    misses: u32,
    returns: u32,
}

/// Misses after which the counts of misses and returns are halved, so that the share of
/// returns follows the workload's current phase.
const MISS_WINDOW: u32 = 1024;

/// The tag bits of a ghost slot.
const GHOST_TAGS: u32 = 15;

impl Ghost {
    /// At least 16 slots, so that the four lowest bits of the hash are part of the index.
    pub(super) fn with_len(len: usize) -> Self {
        Ghost {
            slots: vec![0; len.max(16).next_power_of_two()].into_boxed_slice(),
            ..Ghost::default()
        }
    }

    /// Counts a miss, and whether its key was found here.
    pub(super) fn count_miss(&mut self, returned: bool) {
        self.misses += 1;
        self.returns += u32::from(returned);
        if self.misses >= MISS_WINDOW {
            self.misses /= 2;
            self.returns /= 2;
        }
    }

    /// Whether fewer than half of the recent misses were keys found here: the workload's
    /// reuse distances mostly exceed what the cache and this table remember together.
    pub(super) fn forgets_most_misses(&self) -> bool {
        self.returns * 2 < self.misses
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The stored form of `hash` without its tags; never 0, which marks an empty slot.
    fn untagged(hash: u32) -> u32 {
        match hash & !GHOST_TAGS {
            0 => GHOST_TAGS + 1,
            untagged => untagged,
        }
    }

    fn count(&mut self, stored: u32) -> &mut u32 {
        if stored & 1 == 1 {
            &mut self.small
        } else {
            &mut self.main
        }
    }

    /// Remembers `hash`, evicted from `queue`, with the displacements among `marks`.
    pub(super) fn insert(&mut self, hash: u32, queue: Queue, marks: Marks) {
        let at = hash as usize & (self.slots.len() - 1);
        let stored = Self::untagged(hash)
            | u32::from(queue == Queue::Small)
            | marks.displacement_tags() << 1;
        let old = std::mem::replace(&mut self.slots[at], stored);
        if old != 0 {
            *self.count(old) -= 1;
        }
        *self.count(stored) += 1;
    }

    /// The queue the key of `hash` was recently evicted from, and the admissions that
    /// displaced it, if the key is remembered; forgets it.
    pub(super) fn take(&mut self, hash: u32) -> Option<(Queue, Marks)> {
        if self.slots.is_empty() {
            return None;
        }
        let at = hash as usize & (self.slots.len() - 1);
        let stored = self.slots[at];
        if stored == 0 || stored & !GHOST_TAGS != Self::untagged(hash) {
            return None;
        }
        self.slots[at] = 0;
        *self.count(stored) -= 1;
        let queue = if stored & 1 == 1 {
            Queue::Small
        } else {
            Queue::Main
        };
        Some((queue, Marks::from_displacement_tags(stored >> 1)))
    }
}
