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
//!
//! The same ledger, one per shard for each [`Decision`], judges the admission to main of
//! keys the ghost does not remember but the sketch rates well above main's victim, and,
//! while the shard looks like a loop, of returning keys the sketch rates only one count
//! above it.

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

/// The admissions a ledger judges, each with its own ledger per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// A returning key the sketch refused, admitted on trial.
    Refused = 0,
    /// A key the ghost does not remember, admitted to main because the sketch rates it
    /// above main's victim.
    Unremembered = 1,
    /// A returning key the sketch rates one count above main's victim, the count its own
    /// miss has just added, admitted while the shard looks like a loop.
    Narrow = 2,
}

impl Decision {
    pub(super) const ALL: [Decision; 3] =
        [Decision::Refused, Decision::Unremembered, Decision::Narrow];
}

/// The marks an entry carries while a ledger waits for its outcome, two bits per
/// [`Decision`]: admitted by it and not read in main since, and displaced by it (the
/// victim a key admitted by it was weighed against).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Marks(u8);

impl Marks {
    pub(super) const NONE: Marks = Marks(0);

    const fn admitted_bit(decision: Decision) -> u8 {
        1 << (2 * decision as u8)
    }

    const fn displaced_bit(decision: Decision) -> u8 {
        2 << (2 * decision as u8)
    }

    /// The marks of a key just admitted by `decision`.
    pub(super) const fn admitted_by(decision: Decision) -> Marks {
        Marks(Self::admitted_bit(decision))
    }

    pub(super) fn is_admitted_by(self, decision: Decision) -> bool {
        self.0 & Self::admitted_bit(decision) != 0
    }

    pub(super) fn is_displaced_by(self, decision: Decision) -> bool {
        self.0 & Self::displaced_bit(decision) != 0
    }

    pub(super) fn displace_by(&mut self, decision: Decision) {
        self.0 |= Self::displaced_bit(decision);
    }

    /// The displacements alone: what the ghost keeps of an evicted entry's marks.
    pub(super) fn displacements(self) -> Marks {
        Marks(
            self.0
                & (Self::displaced_bit(Decision::Refused)
                    | Self::displaced_bit(Decision::Unremembered)
                    | Self::displaced_bit(Decision::Narrow)),
        )
    }

    /// Forgets every mark: main's clock found the entry read, so each admission it was
    /// waiting on has its outcome.
    pub(super) fn settle(&mut self) -> Marks {
        std::mem::take(self)
    }

    /// The displacements as three tag bits (bit `n` for the decision of value `n`), as
    /// the ghost keeps them.
    pub(super) fn displacement_tags(self) -> u32 {
        Decision::ALL
            .iter()
            .filter(|&&decision| self.is_displaced_by(decision))
            .map(|&decision| 1 << decision as u32)
            .sum()
    }

    /// The displacements of three tag bits made by `displacement_tags`.
    pub(super) fn from_displacement_tags(tags: u32) -> Marks {
        let mut marks = Marks::NONE;
        for decision in Decision::ALL {
            if tags & 1 << decision as u32 != 0 {
                marks.displace_by(decision);
            }
        }
        marks
    }
}

/// Per shard and decision, under the shard's write lock: the share of candidates admitted
/// and the outcomes counted since it last changed.
pub(super) struct Trials {
    /// How many displaced victims' returns weigh as much as one admitted key's hit.
    returns_per_hit: u32,
    level: u32,
    paid: u32,
    cost: u32,
}

impl Trials {
    /// The ledger of `decision`. Refused keys start at the smallest share: admitting them
    /// against the sketch's judgement must first prove itself, and a victim's return costs
    /// a third of a hit (`RETURNS_PER_HIT`). Unremembered keys the sketch rates high, and
    /// returning keys it rates one count above the victim, start admitted, the sketch's own
    /// judgement, and a victim's return costs a whole hit: the victim was rated below them,
    /// and main evicts it only because they came. On a loop larger than the cache a narrow
    /// admission's victim is the key main holds whose turn comes soonest, so it comes back
    /// before the admitted key is read, and often before main's clock finds that key read.
    pub(super) fn new(decision: Decision) -> Self {
        let (level, returns_per_hit) = match decision {
            Decision::Refused => (MIN_LEVEL, RETURNS_PER_HIT),
            Decision::Unremembered | Decision::Narrow => (LEVEL_ONE, 1),
        };
        Trials {
            returns_per_hit,
            level,
            paid: 0,
            cost: 0,
        }
    }

    /// Whether the candidate of `hash` is admitted at the current share. The sample is
    /// drawn from the hash's bits, so at a given share the same keys are chosen: a key
    /// refused once is not admitted by luck on its next return.
    pub(super) fn admits(&self, hash: u32) -> bool {
        // Six bits of an odd multiple, independent of the bits that pick the shard, the
        // ghost slot and the table bucket.
        (hash.wrapping_mul(0x2545_f491) >> (32 - LEVEL_ONE.trailing_zeros())) < self.level
    }

    /// A key this ledger admitted was read in main: admitting it earned a hit.
    pub(super) fn paid(&mut self) {
        self.paid += 1;
        self.settle();
    }

    /// A victim displaced by a key this ledger admitted came back: admitting cost a miss.
    pub(super) fn cost(&mut self) {
        self.cost += 1;
        self.settle();
    }

    /// The share of candidates admitted, in `1 / 64` units.
    #[cfg(test)]
    pub(super) fn level(&self) -> u32 {
        self.level
    }

    fn settle(&mut self) {
        if self.paid + self.cost < WINDOW {
            return;
        }
        let earned = self.paid * self.returns_per_hit;
        if earned > self.cost {
            self.level = (self.level * 2).min(LEVEL_ONE);
        } else if self.cost > earned {
            self.level = (self.level / 2).max(MIN_LEVEL);
        }
        self.paid = 0;
        self.cost = 0;
    }
}
