//! Whether anyone stored a key since a caller looked it up, without asking the store.
//!
//! A caller that misses and then leads the key's flight must not compute a value another
//! leader stored in between (between its lookup and its joining): it would run the body
//! twice. Looking the key up a second time settles it but costs a store round trip on
//! every miss, which for a remote store doubles the latency of the miss. Instead each
//! flight that stores advances a counter, one of a few stripes chosen by the key's hash:
//! a leader re-reads the store only when its stripe moved since its first lookup, which
//! after a cold miss it almost never has.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

/// Enough stripes that unrelated keys rarely share one (a shared stripe only costs an
/// extra lookup), few enough to stay small in every cache.
const STRIPES: usize = 64;

/// Striped counters of completed stores.
pub(crate) struct WriteEpochs {
    stripes: [AtomicU64; STRIPES],
    hasher: foldhash::fast::FixedState,
}

/// The stripe a key's stores advance.
#[derive(Clone, Copy)]
pub(crate) struct Stripe(usize);

impl WriteEpochs {
    pub(crate) fn new() -> Self {
        WriteEpochs {
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    pub(crate) fn stripe<K: Hash + ?Sized>(&self, key: &K) -> Stripe {
        Stripe(self.hasher.hash_one(key) as usize % STRIPES)
    }

    /// The stripe's epoch. Acquire: a caller that reads an epoch sees the store writes
    /// that preceded it, so its lookup after the read cannot miss them.
    pub(crate) fn read(&self, stripe: Stripe) -> u64 {
        self.stripes[stripe.0].load(Ordering::Acquire)
    }

    /// Called after a store has completed, before the flight hands its value on.
    pub(crate) fn advance(&self, stripe: Stripe) {
        self.stripes[stripe.0].fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_moves_only_its_own_stripe() {
        let epochs = WriteEpochs::new();
        let stored = epochs.stripe(&312u64);
        let other = (0u64..)
            .map(|key| epochs.stripe(&key))
            .find(|stripe| stripe.0 != stored.0)
            .expect("64 stripes");
        let (before, other_before) = (epochs.read(stored), epochs.read(other));
        epochs.advance(stored);
        assert_ne!(epochs.read(stored), before);
        assert_eq!(epochs.read(other), other_before);
        assert_eq!(epochs.stripe(&312u64).0, stored.0, "a key keeps its stripe");
    }
}
