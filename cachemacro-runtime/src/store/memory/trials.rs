//! Admission on trial: a sample of the returning keys that the frequency sketch refuses
//! enters main anyway, and the ledger of what those admissions earned and cost sets how
//! large the sample is.
//!
//! The sketch rates keys by a popularity that it forgets only every few turns of the
//! cache, so when a cache holds most of a workload's reuse window it keeps refusing keys
//! that come back for the popular keys of long ago. Admitting every returning key instead
//! turns a loop larger than the cache into a FIFO that misses every key. Which of the two
//! errors a workload punishes is measured rather than guessed: a key admitted on trial
//! that main's clock then finds read has *paid*; the victim it was weighed against,
//! marked as displaced, that comes back from the ghost has *cost* a miss, or a part of
//! one. Whichever of the two dominates a window doubles or halves the share of refused
//! keys admitted on trial.

/// The share of refused returning keys admitted on trial is `level / LEVEL_ONE`.
const LEVEL_ONE: u32 = 64;

/// Never below one in `LEVEL_ONE`: without trials there would be no evidence to raise the
/// share again when the workload changes.
const MIN_LEVEL: u32 = 1;

/// Outcomes (paid plus cost) per decision: enough that a few outcomes do not swing the
/// share, few enough that a shard adapts within a fraction of a turn of its cache.
/// Measured: 16 and 32 let Zipf and mid-sized real traces lose 0.1 to 0.5 point to
/// trials that a longer window refuses; 128 adapts too slowly to gain where trials pay.
const WINDOW: u32 = 64;

/// How many displaced victims' returns weigh as much as one trial read in main. The victim
/// was main's next eviction anyway: had the trial not displaced it, it would have left at
/// main's next eviction unless read first, so only some of its returns are misses the
/// trial caused. Measured: weighing them one for one keeps trials rare where they pay
/// (about a point less on a disk trace whose reuse window the cache holds), three to one
/// gains that point with the loop, Zipf and scan figures unchanged, and ignoring the
/// returns lets a loop collapse now and then.
const RETURNS_PER_HIT: u32 = 3;

/// Per shard, under its write lock: the share of refused keys admitted on trial and the
/// outcomes counted since it last changed.
pub(super) struct Trials {
    level: u32,
    paid: u32,
    cost: u32,
}

impl Default for Trials {
    /// The smallest share: admitting refused keys must first prove itself.
    fn default() -> Self {
        Trials {
            level: MIN_LEVEL,
            paid: 0,
            cost: 0,
        }
    }
}

impl Trials {
    /// Whether a returning key of `hash` that the sketch refused enters main on trial. The
    /// sample is drawn from the hash's bits, so at a given share the same keys are chosen:
    /// a key refused once is not admitted by luck on its next return.
    pub(super) fn admits(&self, hash: u32) -> bool {
        // Six bits of an odd multiple, independent of the bits that pick the shard, the
        // ghost slot and the table bucket.
        (hash.wrapping_mul(0x2545_f491) >> (32 - LEVEL_ONE.trailing_zeros())) < self.level
    }

    /// A key admitted on trial was read in main: admitting it earned a hit.
    pub(super) fn paid(&mut self) {
        self.paid += 1;
        self.settle();
    }

    /// A victim displaced by a key admitted on trial came back: admitting cost a miss.
    pub(super) fn cost(&mut self) {
        self.cost += 1;
        self.settle();
    }

    /// The share of refused keys admitted on trial, in `1 / 64` units.
    #[cfg(test)]
    pub(super) fn level(&self) -> u32 {
        self.level
    }

    fn settle(&mut self) {
        if self.paid + self.cost < WINDOW {
            return;
        }
        let earned = self.paid * RETURNS_PER_HIT;
        if earned > self.cost {
            self.level = (self.level * 2).min(LEVEL_ONE);
        } else if self.cost > earned {
            self.level = (self.level / 2).max(MIN_LEVEL);
        }
        self.paid = 0;
        self.cost = 0;
    }
}
