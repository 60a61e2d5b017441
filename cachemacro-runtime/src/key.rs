//! Borrowed keys: looking an entry up from the arguments as they were passed.
//!
//! A memoized `fn f(postcode: &str, radius: u32)` stores keys of type `(String, u32)`.
//! Building that key allocates, which a hit should not have to pay for, so the generated
//! code first looks up with `(&str, &u32)`: a [`KeyRef`] that hashes exactly like the
//! owned key (the `Borrow` contract guarantees `hash(&str) == hash(&String)`, and tuples
//! hash element by element) and compares equal to it part by part. Only on a miss is the
//! owned key built, from the very same borrowed parts, so the two can never disagree.

use std::borrow::{Borrow, ToOwned};
use std::hash::Hash;

/// A borrowed form of a key: hashes like the owned [`Key`](KeyRef::Key) and can be
/// compared with it.
///
/// Implemented for tuples (up to 12 parts) of references `(&A, &B, ..)` whose owned forms
/// are `(A::Owned, B::Owned, ..)`, and for the unit key `()`.
///
/// ```
/// use std::collections::hash_map::RandomState;
/// use std::hash::BuildHasher;
/// use cachemacro_runtime::KeyRef;
///
/// let borrowed = ("EC1A", &5u32);
/// let owned: (String, u32) = borrowed.to_key();
/// assert!(borrowed.matches(&owned));
/// assert!(!borrowed.matches(&("EC1A".to_owned(), 6)));
///
/// let hasher = RandomState::new();
/// assert_eq!(hasher.hash_one(&borrowed), hasher.hash_one(&owned));
/// ```
pub trait KeyRef: Hash {
    /// The owned key this borrows from.
    type Key;
    /// Whether `key` is the owned form of `self`.
    fn matches(&self, key: &Self::Key) -> bool;
    /// The owned key.
    fn to_key(&self) -> Self::Key;
}

impl KeyRef for () {
    type Key = ();

    fn matches(&self, _: &()) -> bool {
        true
    }

    fn to_key(&self) {}
}

macro_rules! tuple_key_ref {
    ($($part:ident $index:tt),+) => {
        // A key part that cannot be one is already reported on its argument; listing
        // these impls under that error would only add noise.
        #[allow(unknown_or_malformed_diagnostic_attributes)]
        #[diagnostic::do_not_recommend]
        impl<$($part),+> KeyRef for ($(&$part,)+)
        where
            $($part: ?Sized + ToOwned + Hash + Eq,)+
        {
            type Key = ($($part::Owned,)+);

            fn matches(&self, key: &($($part::Owned,)+)) -> bool {
                $(*self.$index == *Borrow::<$part>::borrow(&key.$index))&&+
            }

            fn to_key(&self) -> ($($part::Owned,)+) {
                ($(self.$index.to_owned(),)+)
            }
        }
    };
}

tuple_key_ref!(A 0);
tuple_key_ref!(A 0, B 1);
tuple_key_ref!(A 0, B 1, C 2);
tuple_key_ref!(A 0, B 1, C 2, D 3);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_key_ref!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

#[cfg(test)]
mod tests {
    use super::KeyRef;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn borrowed_and_owned_keys_hash_alike_and_match() {
        let hasher = RandomState::new();
        let slice: &[u8] = &[1, 2, 3];
        let borrowed = ("postcode", &7u64, slice);
        let owned = borrowed.to_key();
        assert_eq!(owned, ("postcode".to_owned(), 7, vec![1, 2, 3]));
        assert_eq!(hasher.hash_one(borrowed), hasher.hash_one(&owned));
        assert!(borrowed.matches(&owned));
        assert!(!("postcodes", &7u64, slice).matches(&owned));
    }

    #[test]
    fn concatenation_cannot_make_two_keys_equal() {
        let owned = ("EC1", &15u32).to_key();
        assert!(!("EC11", &5u32).matches(&owned));
    }
}
