//! How long the small queue has gone without a hit: the departures from probation since
//! the last key read there, which tells a workload whose reuse distances all exceed the
//! small queue (a loop larger than the cache) from one whose probation still catches
//! second uses.

/// Departures from probation without a read there after which the boundary stops growing
/// toward the small queue. Measured on the disk trace, whose small queue catches about
/// one key in 200 at most sizes, in bursts: with this run its rows at 20 000 and 32 768
/// entries gain 0.2 to 0.4 point, as growth that no hit earns stops, and the row at
/// 160 000 keeps the growth it lives on; a run as short as the loop's (below) costs that
/// row a point, 1 536 0.15 point; 3 072 and 4 096 give back 0.15 and 0.25 point of the
/// gain at 20 000.
pub(super) const GROWTH_WITHOUT_HITS: u32 = 2048;

/// Departures from probation without a read there after which the shard is judged to be
/// cycling through keys, as a loop does (see [`ProbationHits::caught_nothing_lately`]).
/// Short, so that the judgement comes within a few turns of a loop's first laps, before
/// keys displacing each other have set the sketch's counts apart. Measured with the loop
/// at 10% of its keys: 64 to 128 hold it at 87.0 to 87.3, 256 at 86.4, 1 024 at 85.5.
pub(super) const LOOP_WITHOUT_HITS: u32 = 96;

/// The departures from a shard's small queue since one of them was read on probation.
pub(super) struct ProbationHits {
    unread_departures: u32,
}

impl Default for ProbationHits {
    /// A shard that has not evicted yet has no evidence that probation catches anything.
    fn default() -> Self {
        ProbationHits {
            unread_departures: u32::MAX,
        }
    }
}

impl ProbationHits {
    /// Counts one entry leaving the small queue: promoted to main if `read` on probation,
    /// evicted otherwise.
    pub(super) fn depart(&mut self, read: bool) {
        self.unread_departures = if read {
            0
        } else {
            self.unread_departures.saturating_add(1)
        };
    }

    /// Whether a longer small queue has long stopped paying: none of the keys lately
    /// evicted from it unread would have been read had it been longer, as far as its
    /// hits show, so a key coming back from its ghost says nothing about its length.
    pub(super) fn growth_unearned(&self) -> bool {
        self.unread_departures >= GROWTH_WITHOUT_HITS
    }

    /// Whether the small queue has lately caught no second use at all, which, while most
    /// misses are keys the ghost remembers, is what a loop larger than the cache looks like.
    pub(super) fn caught_nothing_lately(&self) -> bool {
        self.unread_departures >= LOOP_WITHOUT_HITS
    }
}
