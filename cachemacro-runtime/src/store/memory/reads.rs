//! The reads a shard's hits leave for its frequency sketch: a small, lossy, direct-mapped
//! buffer of key hashes that readers write under the shard's read lock and the next write
//! drains into the sketch under the write lock (the read buffer of Caffeine's W-TinyLFU,
//! without its ring: a slot per hash instead of a cursor, so readers share no counter).

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Slots per shard: one cache line. Between two writes to a shard, the reads of up to
/// about this many distinct keys survive; more overwrite each other, which samples them.
/// Every write drains the whole buffer, so more slots would cost every miss more.
pub(super) const READ_SLOTS: usize = 16;

/// The hashes of keys read since the buffer was last drained; 0 marks an empty slot (a
/// key whose hash is 0 is never recorded, a loss of one key in four billion).
#[repr(align(64))]
pub(super) struct ReadBuffer {
    slots: [AtomicU32; READ_SLOTS],
}

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer {
            slots: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl ReadBuffer {
    /// The slot of `hash`: its top bits after an odd multiplication, which neither the
    /// shard's choice (the hash's own top bits) nor the ghost (its low bits) correlate with.
    fn index(hash: u32) -> usize {
        (hash.wrapping_mul(0x9e37_79b9) >> (32 - READ_SLOTS.trailing_zeros())) as usize
    }

    /// Records a read of the key of `hash`. A key read again before the drain finds its
    /// hash already there and writes nothing, which keeps the buffer's cache line shared
    /// between the cores that read it.
    pub(super) fn record(&self, hash: u32) {
        let slot = &self.slots[Self::index(hash)];
        if slot.load(Relaxed) != hash {
            slot.store(hash, Relaxed);
        }
    }

    /// Empties the buffer, handing each recorded hash to `read` (once per slot, however
    /// many reads it stood for).
    pub(super) fn drain(&mut self, mut read: impl FnMut(u32)) {
        for slot in &mut self.slots {
            let hash = std::mem::take(slot.get_mut());
            if hash != 0 {
                read(hash);
            }
        }
    }
}
