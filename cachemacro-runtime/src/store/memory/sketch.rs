//! A count-min sketch of 4-bit counters with periodic halving: how often a key was seen
//! recently, including keys no longer held, in 8 bytes per entry of the shard (TinyLFU,
//! Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
//! ACM ToS 2017).

/// Counters saturate at 15 (4 bits): enough to rank keys, and halving keeps them there.
const MAX_COUNT: u64 = 15;

/// How many counters a key maps to, each in its own part of the table. The estimate is
/// the smallest of them, so a collision on one counter does not inflate it.
const DEPTH: usize = 4;

/// Odd multipliers that derive the `DEPTH` independent indices from one 32-bit hash.
const SEEDS: [u64; DEPTH] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
];

/// After `SAMPLE_PER_ENTRY` times the shard's capacity in increments, every counter is
/// halved, so the sketch forgets old popularity at the pace the cache turns over.
const SAMPLE_PER_ENTRY: u64 = 10;

/// The recent frequency of keys, by their folded hash.
#[derive(Default)]
pub(super) struct FrequencySketch {
    /// 16 counters of 4 bits per word; a power of two of words, about one per entry.
    words: Box<[u64]>,
    /// Increments since the last halving.
    additions: u64,
    /// Increments between two halvings.
    sample: u64,
}

impl FrequencySketch {
    /// A sketch for a shard of `entries` entries: one word (16 counters) per entry.
    pub(super) fn with_entries(entries: usize) -> Self {
        let len = entries.max(1).next_power_of_two();
        FrequencySketch {
            words: vec![0; len].into_boxed_slice(),
            additions: 0,
            sample: (entries.max(1) as u64).saturating_mul(SAMPLE_PER_ENTRY),
        }
    }

    /// The word and the bit offset of the `row`th counter of `hash`.
    fn counter(&self, hash: u32, row: usize) -> (usize, u32) {
        let spread = u64::from(hash)
            .wrapping_add(row as u64)
            .wrapping_mul(SEEDS[row]);
        // The top bits pick the word, the next four the counter within it.
        let word = (spread >> 32) as usize & (self.words.len() - 1);
        let nibble = ((spread >> 28) & 0xf) as u32;
        (word, nibble * 4)
    }

    /// How often `hash` was counted since it was last halved away (at most 15); 0 for an
    /// empty sketch.
    pub(super) fn frequency(&self, hash: u32) -> u8 {
        if self.words.is_empty() {
            return 0;
        }
        (0..DEPTH)
            .map(|row| {
                let (word, shift) = self.counter(hash, row);
                (self.words[word] >> shift) & MAX_COUNT
            })
            .min()
            .unwrap_or(0) as u8
    }

    /// Counts one occurrence of `hash`; halves every counter once the sample is reached.
    pub(super) fn increment(&mut self, hash: u32) {
        if self.words.is_empty() {
            return;
        }
        let mut raised = false;
        for row in 0..DEPTH {
            let (word, shift) = self.counter(hash, row);
            if (self.words[word] >> shift) & MAX_COUNT < MAX_COUNT {
                self.words[word] += 1 << shift;
                raised = true;
            }
        }
        if raised {
            self.additions += 1;
            if self.additions >= self.sample {
                self.halve();
            }
        }
    }

    /// Halves every counter (the aging step of TinyLFU).
    pub(super) fn halve(&mut self) {
        for word in self.words.iter_mut() {
            // Shifting the whole word moves each counter's low bit into its neighbour's
            // top bit; the mask clears those.
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }
}
