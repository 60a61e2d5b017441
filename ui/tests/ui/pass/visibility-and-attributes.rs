#![deny(missing_docs, unused_must_use)]
//! Visibility, doc comments and other attributes of the function are kept.

use cachemacro_runtime::memoize;

/// A public API whose memoized items must stay reachable from outside.
pub mod api {
    use super::memoize;

    /// Doubles `n`.
    #[must_use]
    #[inline]
    #[memoize]
    pub fn double(n: u64) -> u64 {
        n * 2
    }

    /// Triples `n`.
    #[memoize(capacity = 10)]
    #[inline(never)]
    pub(crate) fn triple(n: u64) -> u64 {
        n * 3
    }

    pub(super) mod nested {
        use cachemacro_runtime::memoize;

        /// Visible in the parent of `nested`'s parent.
        #[memoize]
        pub(in crate::api) fn quadruple(n: u64) -> u64 {
            n * 4
        }

        /// Visible to `api`.
        #[memoize]
        pub(super) fn quintuple(n: u64) -> u64 {
            n * 5
        }
    }

    /// Uses the restricted functions and their companions from where they are visible.
    pub fn restricted(n: u64) -> u64 {
        let total = nested::quadruple(n) + nested::quintuple(n);
        assert_eq!(nested::quadruple::stats().misses, 1);
        assert!(nested::quintuple::invalidate(n));
        nested::quintuple::clear();
        total
    }

    /// A public type with a memoized public method.
    #[derive(Clone, Hash, PartialEq, Eq)]
    pub struct Meters(pub u64);

    impl Meters {
        /// Kilometers, rounded down.
        #[memoize]
        pub fn kilometers(&self) -> u64 {
            self.0 / 1000
        }
    }
}

fn main() {
    let doubled = api::double(4);
    assert_eq!(doubled, 8);
    assert_eq!(api::double(4), 8);
    assert_eq!(api::double::stats().hits, 1);
    assert_eq!(api::triple(4), 12);
    assert!(api::triple::invalidate(4));
    assert_eq!(api::restricted(1), 9);
    assert_eq!(api::Meters(5_500).kilometers(), 5);
    assert_eq!(api::Meters::kilometers_stats().misses, 1);
}
