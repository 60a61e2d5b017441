//! [`MemoryStore`]: the shards, each behind its own lock, the hit path, the removal
//! listener's reports and the [`Store`] implementation.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::builder::MemoryStoreBuilder;
use super::removal::{Listener, RemovalCause, Removed};
use super::shard::{Shard, MAX_FREQUENCY};
use super::slab::Times;
use super::weigher::Weigher;
use crate::key::KeyRef;
use crate::store::{Store, StoreError, StoreStats};

/// Aligned to 128 bytes (two cache lines, for adjacent-line prefetch) so that two
/// shards' locks never share a line.
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

pub(super) type LockedShard<K, V> = Padded<RwLock<Shard<K, V>>>;

/// The embedded in-memory store: a concurrent map with optional bounds on its number of
/// entries and on their total weight (evicting by S3-FIFO), a default time to live, a time
/// to idle, per-entry time to live and a removal listener.
///
/// Reads take no exclusive lock and never allocate, not even from a borrowed key
/// ([`Store::get_borrowed`]): many threads reading the same hot keys do not contend.
/// Writes lock one shard. Expired entries are never returned; they are purged a few at a
/// time by later writes, without any background thread.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::{MemoryStore, Store, StoreError};
///
/// let store: MemoryStore<String, u64> = MemoryStore::builder()
///     .capacity(10_000)
///     .ttl(Duration::from_secs(300))
///     .build();
///
/// store.insert("answer".to_owned(), 42, None)?;
/// // This entry overrides the default time to live.
/// store.insert("pi".to_owned(), 3, Some(Duration::from_secs(5)))?;
///
/// assert_eq!(store.get(&"answer".to_owned())?, Some(42));
/// assert_eq!(store.get(&"missing".to_owned())?, None);
/// assert_eq!(store.len(), 2);
/// # Ok::<(), StoreError>(())
/// ```
pub struct MemoryStore<K, V> {
    pub(super) shards: Box<[LockedShard<K, V>]>,
    /// `32 - log2(shards)`: a shard is picked by the top bits of the folded hash, which
    /// neither the table's bucket index (low bits) nor the ghost index use.
    pub(super) shard_shift: u32,
    pub(super) hasher: foldhash::fast::RandomState,
    pub(super) capacity: Option<usize>,
    pub(super) max_bytes: Option<u64>,
    /// Set when the store weighs its entries (`max_bytes` or a weigher).
    pub(super) weigher: Option<Weigher<K, V>>,
    pub(super) ttl: Option<Duration>,
    pub(super) tti: Option<Duration>,
    pub(super) tti_nanos: Option<u64>,
    pub(super) base: Instant,
    pub(super) entries: AtomicUsize,
    pub(super) evictions: AtomicU64,
    pub(super) expirations: AtomicU64,
    pub(super) listener: Option<Listener<K, V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> MemoryStore<K, V> {
    /// An unbounded store whose entries expire only when given a time to live at insert.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u64, String>::new();
    /// assert_eq!(store.capacity(), None);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a store: capacity, default time to live, time to idle, removal
    /// listener.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u64, u64>::builder()
    ///     .capacity(1_000)
    ///     .tti(Duration::from_secs(60))
    ///     .build();
    /// assert_eq!(store.capacity(), Some(1_000));
    /// ```
    pub fn builder() -> MemoryStoreBuilder<K, V> {
        MemoryStoreBuilder::new()
    }

    /// Number of entries held, including expired entries not purged yet.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::new();
    /// store.insert(1, "one", None).unwrap();
    /// store.insert(1, "uno", None).unwrap();
    /// assert_eq!(store.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.load(Relaxed)
    }

    /// Whether the store holds no entry (expired entries not purged yet count as held).
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// assert!(MemoryStore::<u8, u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on the number of entries, as configured; `None` if unbounded.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().capacity(64).build();
    /// assert_eq!(store.capacity(), Some(64));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// The bound on the total weight of the entries, as configured with
    /// [`MemoryStoreBuilder::max_bytes`]; `None` if there is none.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().max_bytes(1 << 20).build();
    /// assert_eq!(store.max_bytes(), Some(1 << 20));
    /// assert_eq!(MemoryStore::<u8, u8>::new().max_bytes(), None);
    /// ```
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The total weight of the entries held, including expired entries not purged yet;
    /// always 0 for a store configured with neither `max_bytes` nor a weigher, which does
    /// not weigh its entries. Takes each shard's read lock in turn, so under concurrent
    /// writes the sum is not a snapshot of one instant.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::builder()
    ///     .weigher(|_key: &u32, value: &String| value.len() as u32)
    ///     .build();
    /// store.insert(1, "four".to_owned(), None).unwrap();
    /// store.insert(2, "seven..".to_owned(), None).unwrap();
    /// assert_eq!(store.weighted_size(), 11);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .0
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .slab
                    .weight()
            })
            .sum()
    }
}

impl<K, V> MemoryStore<K, V> {
    fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }

    /// The key's 64-bit hash folded to the 32 bits entries store.
    pub(super) fn hash<T: Hash + ?Sized>(&self, key: &T) -> u32 {
        let hash = self.hasher.hash_one(key);
        (hash ^ (hash >> 32)) as u32
    }

    fn shard_of(&self, hash: u32) -> usize {
        // `checked_shr`: with one shard the shift is 32, and the index 0.
        hash.checked_shr(self.shard_shift).unwrap_or(0) as usize
    }

    pub(super) fn read_shard(&self, hash: u32) -> RwLockReadGuard<'_, Shard<K, V>> {
        let lock = &self.shards[self.shard_of(hash)].0;
        lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a shard's write lock. A panic in user code (`Eq` of `K`, while probing) with
    /// the lock held poisons it; every write compares keys before it changes anything and
    /// drops keys and values after the lock is released, so the shard is still sound and
    /// the store keeps working instead of failing every later call.
    pub(super) fn write_shard(&self, index: usize) -> RwLockWriteGuard<'_, Shard<K, V>> {
        let lock = &self.shards[index].0;
        lock.write().unwrap_or_else(|poisoned| {
            lock.clear_poison();
            poisoned.into_inner()
        })
    }

    /// The hit path shared by [`Store::get`] and [`Store::get_borrowed`].
    fn lookup(&self, hash: u32, eq: impl FnMut(&K) -> bool) -> Option<V>
    where
        V: Clone,
    {
        let shard = self.read_shard(hash);
        let idx = shard.find(hash, eq)?;
        if let Some(times) = shard.slab.times.get(idx as usize) {
            if times.expires_at != 0 || self.tti_nanos.is_some() {
                let now = self.now();
                if times.is_expired(now, self.tti_nanos) {
                    return None;
                }
                if self.tti_nanos.is_some() {
                    // `fetch_max`, not `store`: a slower concurrent reader must not move
                    // the stamp back in time.
                    times.last_read.fetch_max(now, Relaxed);
                }
            }
        }
        let slot = &shard.slab.slots[idx as usize];
        // Load first: hot entries are saturated, and skipping the store keeps their cache
        // line shared between the cores reading them. A lost race between two readers
        // only loses one increment. The read reaches the sketch on the same condition,
        // so a saturated key's hits cost the read buffer nothing either.
        let freq = slot.freq.load(Relaxed);
        if freq < MAX_FREQUENCY {
            slot.freq.store(freq + 1, Relaxed);
            shard.record_read(hash);
        }
        Some(slot.value.clone())
    }

    /// Counts the removed entries, calls the listener on each (no lock held) and drops
    /// them.
    fn report(&self, removed: Removed<K, V>) {
        let Removed { first, more, .. } = removed;
        let all = first.into_iter().chain(more);
        for (key, value, cause) in all {
            match cause {
                RemovalCause::Evicted => {
                    self.evictions.fetch_add(1, Relaxed);
                }
                RemovalCause::Expired => {
                    self.expirations.fetch_add(1, Relaxed);
                }
                _ => {}
            }
            if let Some(listener) = &self.listener {
                listener(&key, &value, cause);
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for MemoryStore<K, V> {
    /// Same as [`MemoryStore::new`].
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store: MemoryStore<String, Vec<u8>> = MemoryStore::default();
    /// assert!(store.is_empty());
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for MemoryStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.entries.load(Relaxed))
            .field("capacity", &self.capacity)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish()
    }
}

/// What a write that finds a live entry under its key did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overwrite {
    /// Put a new value in its place: the old one left the store, reported as
    /// [`RemovalCause::Replaced`].
    Replaces,
    /// Moved the same entry to its next state (a counter's next value): nothing left the
    /// store, nothing is reported.
    Updates,
}

impl<K: Hash + Eq, V> MemoryStore<K, V> {
    /// Stores `value` under `key`, as [`Store::insert`] does; `overwrite` says whether a
    /// live entry already under `key` is reported as replaced.
    pub(super) fn write(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        overwrite: Overwrite,
    ) -> Result<(), StoreError> {
        let hash = self.hash(&key);
        // Weighed before the lock is taken, like the hash: the weigher is user code.
        let weight = self
            .weigher
            .as_ref()
            .map_or(0, |weigher| weigher.weigh(&key, &value));
        let index = self.shard_of(hash);
        let mut removed = Removed::new();
        // The old value of an entry updated in place, dropped once the lock is released.
        let mut updated = None;
        let mut shard = self.write_shard(index);
        if shard.capacity == 0 {
            // Capacity 0: the store holds nothing (caching disabled by configuration).
            drop(shard);
            return Ok(());
        }
        let ttl = ttl.or(self.ttl);
        let tti = self.tti_nanos;
        // The clock is read only when some entry of this shard can expire.
        let now = if ttl.is_some() || tti.is_some() || shard.slab.timed {
            self.now()
        } else {
            0
        };
        if shard.slab.timed {
            shard.purge_expired(now, tti, &mut removed);
            // Counted at once: the `Eq` below is user code and may panic.
            self.entries
                .fetch_sub(mem::take(&mut removed.shrunk), Relaxed);
        }
        if ttl.is_some() || tti.is_some() {
            shard.slab.enable_times(now);
        }
        let expires_at = ttl.map_or(0, |ttl| now.saturating_add(nanos(ttl)).max(1));

        // An entry heavier than the shard's budget is not stored, however much is evicted.
        let fits = u64::from(weight) <= shard.max_weight;
        let mut key = Some(key);
        let mut value = Some(value);
        if let Some(idx) = shard.find(hash, |stored| Some(stored) == key.as_ref()) {
            if shard.slab.is_expired(idx, now, tti) {
                // Replacing an expired entry is a new entry, queued as any new key.
                let (old_key, old_value) = shard.take(idx);
                removed.push(old_key, old_value, RemovalCause::Expired);
            } else if !fits {
                // The old value goes too: serving it in place of the new one would be
                // serving a stale result.
                let (old_key, old_value) = shard.take(idx);
                removed.push(old_key, old_value, RemovalCause::Replaced);
                // `Replaced` does not count as shrinking; here the entry is gone.
                removed.shrunk += 1;
            } else {
                // A live entry is updated in place: same queue position and frequency.
                if let Some(times) = shard.slab.times.get_mut(idx as usize) {
                    times.expires_at = expires_at;
                    *times.last_read.get_mut() = now;
                }
                shard.slab.set_weight(idx, weight);
                let new_value = value.take().expect("value not consumed yet");
                let old = mem::replace(&mut shard.slab.slots[idx as usize].value, new_value);
                let key = key.take().expect("key not consumed yet");
                match overwrite {
                    Overwrite::Replaces => removed.push(key, old, RemovalCause::Replaced),
                    Overwrite::Updates => updated = Some((key, old)),
                }
            }
        }
        match (key, value) {
            (Some(key), Some(value)) if fits => {
                // The ghost is asked before room is made: an eviction for this very
                // insert could otherwise overwrite the slot that remembers the key.
                let recalled = shard.recall(hash);
                while shard.is_full_for(weight) {
                    if !shard.evict_one(now, tti, &mut removed) {
                        break;
                    }
                }
                let placement = shard.placement_for_new(hash, recalled);
                shard.push(
                    key,
                    value,
                    hash,
                    weight,
                    Times::new(expires_at, now),
                    placement,
                );
                // Decrease before increase, both under the shard lock: the sum of the
                // shards' contributions never exceeds the capacity.
                self.entries.fetch_sub(removed.shrunk, Relaxed);
                self.entries.fetch_add(1, Relaxed);
                drop(shard);
            }
            (key, value) => {
                // Replaced in place, possibly by a heavier value: make room by the same
                // order, which may pick the replaced entry itself if it is the next victim.
                while shard.slab.weight() > shard.max_weight {
                    if !shard.evict_one(now, tti, &mut removed) {
                        break;
                    }
                }
                self.entries.fetch_sub(removed.shrunk, Relaxed);
                drop(shard);
                // An entry too heavy to store is dropped here, with no lock held.
                drop((key, value));
            }
        }
        self.report(removed);
        drop(updated);
        Ok(())
    }

    /// Gives the live entry under `key` a time to live of `ttl` from now (and, with a
    /// time to idle, counts this as a read), in place: same value, queue position and
    /// frequency, so nothing left the store and the listener hears nothing. Returns
    /// whether there was such an entry.
    pub(super) fn set_ttl(&self, key: &K, ttl: Duration) -> bool {
        let hash = self.hash(key);
        let mut shard = self.write_shard(self.shard_of(hash));
        let Some(idx) = shard.find(hash, |stored| stored == key) else {
            return false;
        };
        let now = self.now();
        if shard.slab.is_expired(idx, now, self.tti_nanos) {
            // Left for a write to purge and report, as a read leaves it.
            return false;
        }
        shard.slab.enable_times(now);
        let times = &mut shard.slab.times[idx as usize];
        times.expires_at = now.saturating_add(nanos(ttl)).max(1);
        *times.last_read.get_mut() = now;
        true
    }
}

impl<K, V> Store<K, V> for MemoryStore<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        Ok(self.lookup(self.hash(key), |stored| stored == key))
    }

    fn get_borrowed<Q>(&self, key: &Q) -> Option<V>
    where
        Q: KeyRef<Key = K> + ?Sized,
    {
        // `KeyRef` guarantees the borrowed key hashes like the owned one, so the same
        // hasher finds the same shard and bucket.
        self.lookup(self.hash(key), |stored| key.matches(stored))
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.write(key, value, ttl, Overwrite::Replaces)
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let hash = self.hash(key);
        let mut shard = self.write_shard(self.shard_of(hash));
        let Some(idx) = shard.find(hash, |stored| stored == key) else {
            return Ok(false);
        };
        let live = !shard.slab.timed || !shard.slab.is_expired(idx, self.now(), self.tti_nanos);
        let (old_key, old_value) = shard.take(idx);
        self.entries.fetch_sub(1, Relaxed);
        drop(shard);
        let cause = if live {
            RemovalCause::Invalidated
        } else {
            RemovalCause::Expired
        };
        let mut removed = Removed::new();
        removed.push(old_key, old_value, cause);
        self.report(removed);
        Ok(live)
    }

    fn clear(&self) -> Result<(), StoreError> {
        for index in 0..self.shards.len() {
            let mut shard = self.write_shard(index);
            let slots = shard.clear();
            self.entries.fetch_sub(slots.len(), Relaxed);
            drop(shard);
            if let Some(listener) = &self.listener {
                for slot in &slots {
                    listener(&slot.key, &slot.value, RemovalCause::Cleared);
                }
            }
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        // All fields are set, so no `..StoreStats::default()` (clippy::needless_update).
        StoreStats {
            entries: self.entries.load(Relaxed) as u64,
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
        }
    }
}

/// `d` in nanoseconds, saturating (`u64` nanoseconds last 584 years).
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
