//! Entries leaving the store: why they left, the listener told about it, and the batch a
//! write collects under a shard lock to report once the lock is released.

use std::sync::Arc;

/// Why an entry left a [`MemoryStore`](super::MemoryStore); passed to the listener set
/// with [`MemoryStoreBuilder::on_removal`](super::MemoryStoreBuilder::on_removal).
///
/// ```
/// use cachemacro_runtime::RemovalCause;
///
/// assert_ne!(RemovalCause::Evicted, RemovalCause::Expired);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Removed to respect the store's capacity or its `max_bytes`.
    Evicted,
    /// Its time to live or time to idle ran out (found by a read-triggered write, a purge,
    /// the eviction, a `remove` or a replacing insert).
    Expired,
    /// Removed by [`Store::remove`](crate::Store::remove) while still live.
    Invalidated,
    /// Its value was replaced by [`Store::insert`](crate::Store::insert) under the same
    /// key; the listener gets the old value. Also the cause when the new value weighs more
    /// than a shard's share of `max_bytes`: it is not stored, and the old value is removed
    /// all the same, so the key is then absent. A counter moved by
    /// [`CacheApi::incr`](crate::CacheApi::incr) or an expiry changed by
    /// [`CacheApi::touch`](crate::CacheApi::touch) is the same entry updated in place, and
    /// is not reported.
    Replaced,
    /// Removed by [`Store::clear`](crate::Store::clear).
    Cleared,
}

/// The removal listener, as set with `MemoryStoreBuilder::on_removal`.
pub(super) type Listener<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// Entries removed under a shard lock, reported and dropped once it is released. The
/// first one is kept inline: an insert into a full store evicts one entry, and should not
/// allocate for it.
pub(super) struct Removed<K, V> {
    pub(super) first: Option<(K, V, RemovalCause)>,
    pub(super) more: Vec<(K, V, RemovalCause)>,
    /// Removals that shrank the store (all but `Replaced`).
    pub(super) shrunk: usize,
}

impl<K, V> Removed<K, V> {
    pub(super) fn new() -> Self {
        Removed {
            first: None,
            more: Vec::new(),
            shrunk: 0,
        }
    }

    pub(super) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        if cause != RemovalCause::Replaced {
            self.shrunk += 1;
        }
        if self.first.is_none() {
            self.first = Some((key, value, cause));
        } else {
            self.more.push((key, value, cause));
        }
    }
}
