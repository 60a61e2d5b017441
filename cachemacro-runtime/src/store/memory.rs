//! The embedded in-memory store: a sharded concurrent map with SIEVE eviction and
//! per-entry expiry.
//!
//! # Design
//!
//! - Entries live in a [`DashMap`]. A read takes one shard read lock and touches only
//!   atomics in the entry (the SIEVE `visited` bit and, with a time to idle, the last-read
//!   stamp), so readers never contend with each other nor with the eviction policy.
//! - Eviction follows SIEVE (Zhang et al., "SIEVE is Simpler than LRU: an Efficient
//!   Turn-Key Eviction Algorithm for Web Caches", NSDI '24): a FIFO queue of keys and a
//!   "hand" that walks it from the oldest entry toward the newest, sparing (and un-marking)
//!   entries read since the hand last passed and evicting the first one that was not.
//!   Unlike LRU, a hit never reorders the queue, which is what lets reads stay lock-free.
//! - The queue and the hand sit behind one [`Mutex`] that only writers take. Every
//!   structural change of the map (new key, removal, eviction, purge, clear) happens
//!   while holding it, so writers are serialized and the map never holds more than
//!   `capacity` entries, not even transiently under concurrency.
//! - Lock order is always "policy mutex, then a shard lock". No shard guard is ever held
//!   while the mutex is taken, and no two guards are held at once.
//! - Expiry is lazy and needs no background thread: a read reports an expired entry as a
//!   miss, and every insert purges expired entries among the few oldest of the queue (the
//!   ones most likely to have expired), so the work per write stays bounded.
//! - Time is kept as `u64` nanoseconds since an [`Instant`] taken at construction, so an
//!   entry carries two words of clock instead of two `Option<Instant>`s.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::{Store, StoreError, StoreStats};

/// "No node": the end of a list, or an unset hand.
const NIL: u32 = u32::MAX;

/// Queue nodes are addressed by `u32` to keep them small, which bounds the number of
/// entries of a store, including an "unbounded" one, to `u32::MAX - 1` (about four
/// billion: far more than fits in memory for any useful entry size).
const MAX_ENTRIES: usize = (NIL - 1) as usize;

/// How many of the oldest entries each insert checks for expiry. Small and constant so a
/// write never pays for a large backlog; steady writes still drain expired entries faster
/// than they can pile up, since each insert adds one entry and may purge up to this many.
const PURGE_PER_WRITE: usize = 4;

/// One stored value and the metadata the policy and the expiry need.
struct Entry<V> {
    value: V,
    /// Nanoseconds since the store's base when this entry expires; 0 = never.
    ///
    /// A plain integer rather than an atomic: it is only written through a `RefMut`, that
    /// is under the shard's write lock, which already excludes every reader.
    expires_at: u64,
    /// Nanoseconds since the base of the last read or write. Only maintained when the
    /// store has a time to idle; readers update it under the shard's read lock.
    last_read: AtomicU64,
    /// SIEVE's bit: read since the hand last passed over this entry.
    visited: AtomicBool,
    /// Index of this entry's node in the policy queue.
    node: u32,
}

impl<V> Entry<V> {
    fn is_expired(&self, now: u64, tti: Option<u64>) -> bool {
        (self.expires_at != 0 && now >= self.expires_at)
            || tti.is_some_and(|tti| now.saturating_sub(self.last_read.load(Relaxed)) >= tti)
    }
}

/// A slot of the SIEVE queue. A slot on the free list has no key and is chained through
/// `newer`.
struct Node<K> {
    key: Option<K>,
    newer: u32,
    older: u32,
}

/// The SIEVE queue: a doubly linked list of keys, newest first, stored in a slab so links
/// are 4-byte indices and freed slots are reused instead of reallocated.
struct SieveQueue<K> {
    nodes: Vec<Node<K>>,
    free: u32,
    newest: u32,
    oldest: u32,
    /// Next node the eviction hand examines; `NIL` means "start over from the oldest".
    hand: u32,
    /// Linked (non-free) nodes, which is also the number of entries in the map.
    len: usize,
}

impl<K> SieveQueue<K> {
    const fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: NIL,
            newest: NIL,
            oldest: NIL,
            hand: NIL,
            len: 0,
        }
    }

    fn key(&self, idx: u32) -> Option<&K> {
        self.nodes.get(idx as usize)?.key.as_ref()
    }

    fn newer(&self, idx: u32) -> u32 {
        self.nodes.get(idx as usize).map_or(NIL, |node| node.newer)
    }

    /// Links `key` as the newest node and returns its index.
    fn push_newest(&mut self, key: K) -> u32 {
        let node = Node {
            key: Some(key),
            newer: NIL,
            older: self.newest,
        };
        let idx = if self.free == NIL {
            // The slab never holds more slots than the most entries ever live at once,
            // which `MemoryStore::limit` keeps at or below `MAX_ENTRIES`, so the new
            // index is below `NIL`.
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        } else {
            let idx = self.free;
            let slot = &mut self.nodes[idx as usize];
            self.free = slot.newer;
            *slot = node;
            idx
        };
        match self.newest {
            NIL => self.oldest = idx,
            newest => self.nodes[newest as usize].newer = idx,
        }
        self.newest = idx;
        self.len += 1;
        idx
    }

    /// Unlinks node `idx`, puts its slot on the free list and returns its key, or `None`
    /// if `idx` is not a linked node.
    fn unlink(&mut self, idx: u32) -> Option<K> {
        let free = self.free;
        let node = self.nodes.get_mut(idx as usize)?;
        let key = node.key.take()?;
        let (newer, older) = (node.newer, node.older);
        node.newer = free;
        node.older = NIL;
        self.free = idx;
        match newer {
            NIL => self.newest = older,
            newer => self.nodes[newer as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            older => self.nodes[older as usize].newer = newer,
        }
        if self.hand == idx {
            self.hand = newer;
        }
        self.len -= 1;
        Some(key)
    }

    fn reset(&mut self) {
        *self = Self {
            nodes: mem::take(&mut self.nodes),
            ..Self::new()
        };
        // Keeps the allocation: a cleared cache usually fills up again to the same size.
        self.nodes.clear();
    }
}

/// What the eviction hand does with the node it examines.
enum Fate {
    /// Read since the hand last passed: un-marked and kept.
    Spared,
    /// Removed to make room.
    Evicted,
    /// Removed because its time to live or time to idle ran out.
    Expired,
    /// Its key is no longer in the map (only after a panic in user code); dropped.
    Orphaned,
}

/// The embedded in-memory store: a concurrent map with an optional bound on its number of
/// entries (evicting by SIEVE), a default time to live, a time to idle and per-entry time
/// to live.
///
/// Reads take no exclusive lock: many threads reading the same hot keys do not contend.
/// Writes are serialized by one mutex. Expired entries are never returned; they are
/// purged a few at a time by later writes, without any background thread.
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
    map: DashMap<K, Entry<V>>,
    queue: Mutex<SieveQueue<K>>,
    capacity: Option<usize>,
    /// `capacity`, or `MAX_ENTRIES` when unbounded (clamped to it in any case).
    limit: usize,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    base: Instant,
    /// Mirror of the queue's `len`, readable without the mutex.
    entries: AtomicUsize,
    evictions: AtomicU64,
    expirations: AtomicU64,
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

    /// Starts configuring a store: capacity, default time to live, time to idle.
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
        MemoryStoreBuilder {
            capacity: None,
            ttl: None,
            tti: None,
            types: PhantomData,
        }
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

    fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }

    fn tti_nanos(&self) -> Option<u64> {
        self.tti.map(nanos)
    }

    /// Takes the policy mutex. A panic in user code (`Hash`, `Eq`, `Clone`, `Drop` of `K`
    /// or `V`) while it was held poisons it; every write keeps the queue and the map
    /// consistent at each point where it calls user code (removal from the map before
    /// unlinking, values dropped last), so the state is still sound and the store keeps
    /// working instead of failing every later write.
    fn lock_queue(&self) -> MutexGuard<'_, SieveQueue<K>> {
        self.queue.lock().unwrap_or_else(|poisoned| {
            self.queue.clear_poison();
            poisoned.into_inner()
        })
    }

    /// Removes node `idx` and its map entry, map first so that a panicking `Hash` or `Eq`
    /// leaves both in place.
    fn remove_node(&self, queue: &mut SieveQueue<K>, idx: u32) {
        let entry = queue.key(idx).and_then(|key| self.map.remove(key));
        let key = queue.unlink(idx);
        drop(entry);
        drop(key);
    }

    /// Purges the expired entries among the `PURGE_PER_WRITE` oldest.
    fn purge_oldest_expired(&self, queue: &mut SieveQueue<K>, now: u64, tti: Option<u64>) {
        let mut idx = queue.oldest;
        for _ in 0..PURGE_PER_WRITE {
            let Some(key) = queue.key(idx) else { break };
            let next = queue.newer(idx);
            let fate = match self.map.get(key) {
                None => Some(Fate::Orphaned),
                Some(entry) if entry.is_expired(now, tti) => Some(Fate::Expired),
                Some(_) => None,
            };
            if let Some(fate) = fate {
                self.remove_node(queue, idx);
                if let Fate::Expired = fate {
                    self.expirations.fetch_add(1, Relaxed);
                }
            }
            idx = next;
        }
    }

    /// Moves the SIEVE hand until it removes one node; returns false if the queue is empty.
    fn evict_one(&self, queue: &mut SieveQueue<K>, now: u64, tti: Option<u64>) -> bool {
        // Readers may set `visited` again behind the hand, so with every entry being read
        // all the time the hand could circle forever; after two laps it evicts whatever it
        // points at.
        let mut spare_budget = queue.len.saturating_mul(2);
        loop {
            let idx = match queue.hand {
                NIL => queue.oldest,
                hand => hand,
            };
            let Some(key) = queue.key(idx) else {
                return false;
            };
            let fate = match self.map.get(key) {
                None => Fate::Orphaned,
                Some(entry) if entry.is_expired(now, tti) => Fate::Expired,
                Some(entry) if spare_budget > 0 && entry.visited.load(Relaxed) => {
                    entry.visited.store(false, Relaxed);
                    Fate::Spared
                }
                Some(_) => Fate::Evicted,
            };
            if let Fate::Spared = fate {
                spare_budget -= 1;
                queue.hand = queue.newer(idx);
                continue;
            }
            // Unlinking the node under the hand moves the hand to the next newer node, as
            // the paper does after an eviction.
            queue.hand = idx;
            self.remove_node(queue, idx);
            match fate {
                Fate::Evicted => self.evictions.fetch_add(1, Relaxed),
                Fate::Expired => self.expirations.fetch_add(1, Relaxed),
                Fate::Orphaned | Fate::Spared => 0,
            };
            return true;
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
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish()
    }
}

impl<K, V> Store<K, V> for MemoryStore<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let Some(entry) = self.map.get(key) else {
            return Ok(None);
        };
        let tti = self.tti_nanos();
        if entry.expires_at != 0 || tti.is_some() {
            let now = self.now();
            if entry.is_expired(now, tti) {
                return Ok(None);
            }
            if tti.is_some() {
                // `fetch_max`, not `store`: a slower concurrent reader must not move the
                // stamp back in time.
                entry.last_read.fetch_max(now, Relaxed);
            }
        }
        // Load first: hot entries are already marked, and skipping the store keeps their
        // cache line shared between the cores reading them.
        if !entry.visited.load(Relaxed) {
            entry.visited.store(true, Relaxed);
        }
        Ok(Some(entry.value.clone()))
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        if self.limit == 0 {
            // Capacity 0: the store holds nothing (caching disabled by configuration).
            return Ok(());
        }
        let mut queue = self.lock_queue();
        let now = self.now();
        let tti = self.tti_nanos();
        self.purge_oldest_expired(&mut queue, now, tti);
        let expires_at = match ttl.or(self.ttl) {
            Some(ttl) => now.saturating_add(nanos(ttl)).max(1),
            None => 0,
        };

        let expired_node = match self.map.get_mut(&key) {
            Some(mut entry) if !entry.is_expired(now, tti) => {
                // A live entry is updated in place: same queue position, `visited` kept.
                entry.expires_at = expires_at;
                *entry.last_read.get_mut() = now;
                let previous = mem::replace(&mut entry.value, value);
                drop(entry);
                drop(queue);
                drop(previous);
                return Ok(());
            }
            Some(entry) => Some(entry.node),
            None => None,
        };
        if let Some(idx) = expired_node {
            // Replacing an expired entry is a new entry: it starts at the newest end.
            self.remove_node(&mut queue, idx);
            self.expirations.fetch_add(1, Relaxed);
        }

        // Cloned before evicting so a panicking `Clone` does not evict for nothing.
        let queued_key = key.clone();
        while queue.len >= self.limit {
            if !self.evict_one(&mut queue, now, tti) {
                break;
            }
        }
        let node = queue.push_newest(queued_key);
        let displaced = self.map.insert(
            key,
            Entry {
                value,
                expires_at,
                last_read: AtomicU64::new(now),
                visited: AtomicBool::new(false),
                node,
            },
        );
        debug_assert!(displaced.is_none(), "a new key was already in the map");
        self.entries.store(queue.len, Relaxed);
        Ok(())
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let mut queue = self.lock_queue();
        let Some(removed) = self.map.remove(key) else {
            return Ok(false);
        };
        let queued_key = queue.unlink(removed.1.node);
        self.entries.store(queue.len, Relaxed);
        let live = !removed.1.is_expired(self.now(), self.tti_nanos());
        if !live {
            self.expirations.fetch_add(1, Relaxed);
        }
        drop(queue);
        drop(removed);
        drop(queued_key);
        Ok(live)
    }

    fn clear(&self) -> Result<(), StoreError> {
        let mut queue = self.lock_queue();
        self.map.clear();
        queue.reset();
        self.entries.store(0, Relaxed);
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

/// Configures a [`MemoryStore`]: bound on entries, default time to live, time to idle.
///
/// Every setting is optional; `MemoryStore::builder().build()` is the same as
/// [`MemoryStore::new`].
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::MemoryStore;
///
/// let sessions = MemoryStore::<u64, String>::builder()
///     .capacity(50_000)
///     .ttl(Duration::from_secs(24 * 3600))
///     .tti(Duration::from_secs(30 * 60))
///     .build();
/// assert_eq!(sessions.capacity(), Some(50_000));
/// ```
pub struct MemoryStoreBuilder<K, V> {
    capacity: Option<usize>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    // `fn() -> _`: the builder holds no `K` or `V`, so it is `Send + Sync` regardless.
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> MemoryStoreBuilder<K, V> {
    /// Bounds the store to `entries` entries; inserting a new key into a full store evicts
    /// one by SIEVE. `0` means the store holds nothing: inserts are accepted and dropped,
    /// every read misses (a way to disable caching from configuration). Values above
    /// `u32::MAX - 1` are clamped to it.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::builder().capacity(2).build();
    /// for n in 0..10 {
    ///     store.insert(n, n * n, None).unwrap();
    /// }
    /// assert_eq!(store.len(), 2);
    /// ```
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = Some(entries);
        self
    }

    /// Default time to live: an entry expires this long after it was inserted, unless
    /// [`Store::insert`] gives it a time to live of its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().ttl(Duration::from_secs(60)).build();
    /// # let _ = store;
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Time to idle: an entry expires when it has not been read (nor re-inserted) for this
    /// long. Combines with the time to live: whichever runs out first expires the entry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().tti(Duration::from_secs(600)).build();
    /// # let _ = store;
    /// ```
    pub fn tti(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }
}

impl<K: Hash + Eq + Clone, V: Clone> MemoryStoreBuilder<K, V> {
    /// Creates the store.
    ///
    /// ```
    /// use cachemacro_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::<u8, u8>::builder().capacity(16).build();
    /// assert!(store.is_empty());
    /// ```
    pub fn build(self) -> MemoryStore<K, V> {
        MemoryStore {
            map: DashMap::new(),
            queue: Mutex::new(SieveQueue::new()),
            capacity: self.capacity,
            limit: self.capacity.map_or(MAX_ENTRIES, |c| c.min(MAX_ENTRIES)),
            ttl: self.ttl,
            tti: self.tti,
            base: Instant::now(),
            entries: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
        }
    }
}

impl<K, V> fmt::Debug for MemoryStoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreBuilder")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish()
    }
}

/// `d` in nanoseconds, saturating (`u64` nanoseconds last 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::thread;

    use super::*;

    const SHORT: Duration = Duration::from_millis(30);
    /// Long enough past `SHORT` that a loaded machine still sees the entry expired.
    const PAST_SHORT: Duration = Duration::from_millis(120);
    /// Long enough that nothing expires during a test, however slow the machine.
    const LONG: Duration = Duration::from_secs(600);

    fn store<V: Clone>(capacity: usize) -> MemoryStore<&'static str, V> {
        MemoryStore::builder().capacity(capacity).build()
    }

    fn stats(entries: u64, evictions: u64, expirations: u64) -> StoreStats {
        StoreStats {
            entries,
            evictions,
            expirations,
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MemoryStore<String, Vec<u8>>>();
        assert_send_sync::<MemoryStoreBuilder<String, std::rc::Rc<u8>>>();
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let store = MemoryStore::builder().capacity(10).build();
        for n in 0..1_000u32 {
            store.insert(n, n, None).unwrap();
            if n % 3 == 0 {
                // Reads set `visited` bits, so the hand has to spare and come back.
                store.get(&n).unwrap();
            }
            assert!(store.len() <= 10, "len {} after inserting {n}", store.len());
        }
        assert_eq!(store.len(), 10);
        let held = (0..1_000u32)
            .filter(|n| store.get(n).unwrap().is_some())
            .count();
        assert_eq!(held, 10);
        assert_eq!(store.stats(), stats(10, 990, 0));
    }

    #[test]
    fn sieve_keeps_a_frequently_read_key_over_one_hit_wonders() {
        let store = store(3);
        store.insert("a", 1, None).unwrap();
        assert_eq!(store.get(&"a").unwrap(), Some(1));
        for key in ["b", "c", "d", "e"] {
            store.insert(key, 0, None).unwrap();
        }
        assert_eq!(store.get(&"a").unwrap(), Some(1));
        // The hand spared "a", then evicted "b" for "d" and "c" for "e".
        assert_eq!(store.get(&"b").unwrap(), None);
        assert_eq!(store.get(&"c").unwrap(), None);
        assert_eq!(store.get(&"d").unwrap(), Some(0));
        assert_eq!(store.get(&"e").unwrap(), Some(0));
        assert_eq!(store.stats(), stats(3, 2, 0));
    }

    #[test]
    fn sieve_evicts_an_unread_key_once_its_mark_is_spent() {
        let store = store(2);
        store.insert("a", 1, None).unwrap();
        store.get(&"a").unwrap();
        store.insert("b", 2, None).unwrap();
        // Spares "a" (clearing its bit), evicts "b".
        store.insert("c", 3, None).unwrap();
        assert_eq!(store.get(&"b").unwrap(), None);
        // The hand ran off the newest end and wraps to the oldest, "a", whose mark was
        // spent on the previous pass: evicted.
        store.insert("d", 4, None).unwrap();
        assert_eq!(store.get(&"a").unwrap(), None);
        assert_eq!(store.get(&"c").unwrap(), Some(3));
        assert_eq!(store.get(&"d").unwrap(), Some(4));
    }

    #[test]
    fn default_ttl_expires_entries() {
        let store = MemoryStore::builder().ttl(SHORT).build();
        store.insert("k", 1, None).unwrap();
        thread::sleep(PAST_SHORT);
        assert_eq!(store.get(&"k").unwrap(), None);
        // Expired but not purged yet: still held until a write gets to it.
        assert_eq!(store.len(), 1);
        assert_eq!(store.stats(), stats(1, 0, 0));
    }

    #[test]
    fn per_entry_ttl_overrides_default() {
        let store = MemoryStore::builder().ttl(SHORT).build();
        store.insert("default", 1, None).unwrap();
        store.insert("long", 2, Some(LONG)).unwrap();
        let never_by_default = MemoryStore::new();
        never_by_default.insert("short", 3, Some(SHORT)).unwrap();
        never_by_default.insert("forever", 4, None).unwrap();
        thread::sleep(PAST_SHORT);
        assert_eq!(store.get(&"default").unwrap(), None);
        assert_eq!(store.get(&"long").unwrap(), Some(2));
        assert_eq!(never_by_default.get(&"short").unwrap(), None);
        assert_eq!(never_by_default.get(&"forever").unwrap(), Some(4));
    }

    #[test]
    fn tti_read_keeps_entry_alive_and_idle_expires_it() {
        let tti = Duration::from_millis(200);
        let store = MemoryStore::builder().tti(tti).build();
        store.insert("read", 1, None).unwrap();
        store.insert("idle", 2, None).unwrap();
        // Six reads 40 ms apart: 240 ms in all, more than the time to idle, but never
        // 200 ms without a read.
        for _ in 0..6 {
            thread::sleep(Duration::from_millis(40));
            assert_eq!(store.get(&"read").unwrap(), Some(1));
        }
        assert_eq!(store.get(&"idle").unwrap(), None);
        thread::sleep(Duration::from_millis(400));
        assert_eq!(store.get(&"read").unwrap(), None);
    }

    #[test]
    fn reinsert_resets_tti() {
        let store = MemoryStore::builder()
            .tti(Duration::from_millis(200))
            .build();
        store.insert("k", 1, None).unwrap();
        for n in 2..8 {
            thread::sleep(Duration::from_millis(40));
            store.insert("k", n, None).unwrap();
        }
        assert_eq!(store.get(&"k").unwrap(), Some(7));
    }

    #[test]
    fn remove_reports_whether_a_live_entry_existed() {
        let store = MemoryStore::new();
        store.insert("live", 1, None).unwrap();
        store.insert("expired", 2, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        assert!(store.remove(&"live").unwrap());
        assert!(!store.remove(&"live").unwrap());
        assert!(!store.remove(&"absent").unwrap());
        assert!(!store.remove(&"expired").unwrap());
        assert!(store.is_empty());
        assert_eq!(store.stats(), stats(0, 0, 1));
        // The freed slots are reused and the queue still works.
        store.insert("again", 3, None).unwrap();
        assert_eq!(store.get(&"again").unwrap(), Some(3));
    }

    #[test]
    fn clear_removes_everything() {
        let store = store(8);
        for key in ["a", "b", "c"] {
            store.insert(key, 1, None).unwrap();
        }
        store.clear().unwrap();
        assert!(store.is_empty());
        for key in ["a", "b", "c"] {
            assert_eq!(store.get(&key).unwrap(), None);
        }
        assert_eq!(store.stats(), stats(0, 0, 0));
        // Usable afterwards, with the bound intact.
        for key in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            store.insert(key, 2, None).unwrap();
        }
        assert_eq!(store.len(), 8);
        assert_eq!(store.stats(), stats(8, 2, 0));
    }

    #[test]
    fn stats_count_evictions_and_expirations_exactly() {
        let store = MemoryStore::builder().capacity(4).build();
        for n in 0..7u32 {
            store.insert(n, n, None).unwrap();
        }
        assert_eq!(store.stats(), stats(4, 3, 0));

        // 3..=6 are held. Two of them get a short time to live, updated in place.
        store.insert(3, 30, Some(SHORT)).unwrap();
        store.insert(4, 40, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        // The write purges the expired 3 and 4 among the oldest, before replacing 4.
        store.insert(4, 41, None).unwrap();
        assert_eq!(store.stats(), stats(3, 3, 2));
        assert_eq!(store.get(&4).unwrap(), Some(41));
        // Room was made by the purge: no eviction for the next new key.
        store.insert(7, 7, None).unwrap();
        assert_eq!(store.stats(), stats(4, 3, 2));
        store.insert(8, 8, None).unwrap();
        assert_eq!(store.stats(), stats(4, 4, 2));
    }

    #[test]
    fn replacing_an_expired_entry_counts_an_expiration() {
        // Five fresh entries sit before the expired one, beyond the purge window.
        let store = MemoryStore::new();
        for n in 0..5u32 {
            store.insert(n, n, None).unwrap();
        }
        store.insert(5, 5, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        store.insert(5, 50, None).unwrap();
        assert_eq!(store.stats(), stats(6, 0, 1));
        assert_eq!(store.get(&5).unwrap(), Some(50));
    }

    #[test]
    fn eviction_prefers_an_expired_entry_on_the_way() {
        let store = MemoryStore::builder().capacity(6).build();
        // Oldest first: 0..=4 read (so spared), 5 expires. 0..=3 sit in the purge window
        // and are live, so only the hand can find 5.
        for n in 0..5u32 {
            store.insert(n, n, None).unwrap();
            store.get(&n).unwrap();
        }
        store.insert(5, 5, Some(SHORT)).unwrap();
        thread::sleep(PAST_SHORT);
        store.insert(6, 6, None).unwrap();
        assert_eq!(store.stats(), stats(6, 0, 1));
        for n in [0, 1, 2, 3, 4, 6] {
            assert_eq!(store.get(&n).unwrap(), Some(n));
        }
    }

    #[test]
    fn write_purges_expired_oldest_entries() {
        let store = MemoryStore::builder().ttl(SHORT).build();
        for n in 0..6u32 {
            store.insert(n, n, None).unwrap();
        }
        thread::sleep(PAST_SHORT);
        store.insert(100, 100, Some(LONG)).unwrap();
        // At most four purged per write.
        assert_eq!(store.stats(), stats(3, 0, 4));
        store.insert(101, 101, Some(LONG)).unwrap();
        // 4 and 5 purged; 100 is live, and nothing is past it.
        assert_eq!(store.stats(), stats(2, 0, 6));
    }

    #[test]
    fn replacing_a_key_does_not_grow_len() {
        let store = store(2);
        store.insert("a", 1, None).unwrap();
        store.insert("b", 2, None).unwrap();
        for n in 3..10 {
            store.insert("a", n, None).unwrap();
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.get(&"a").unwrap(), Some(9));
        assert_eq!(store.get(&"b").unwrap(), Some(2));
        assert_eq!(store.stats(), stats(2, 0, 0));
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let store = store(0);
        store.insert("a", 1, None).unwrap();
        assert_eq!(store.get(&"a").unwrap(), None);
        assert!(store.is_empty());
        assert!(!store.remove(&"a").unwrap());
        assert_eq!(store.stats(), stats(0, 0, 0));
    }

    #[test]
    fn debug_shows_configuration_without_debug_bounds() {
        struct Opaque;
        impl Clone for Opaque {
            fn clone(&self) -> Self {
                Opaque
            }
        }
        let builder = MemoryStore::<u8, Opaque>::builder()
            .capacity(5)
            .ttl(Duration::from_secs(1));
        assert_eq!(
            format!("{builder:?}"),
            "MemoryStoreBuilder { capacity: Some(5), ttl: Some(1s), tti: None }"
        );
        let store = builder.build();
        store.insert(1, Opaque, None).unwrap();
        assert_eq!(
            format!("{store:?}"),
            "MemoryStore { len: 1, capacity: Some(5), ttl: Some(1s), tti: None }"
        );
    }

    /// Walks the queue both ways and checks it against the map: same keys, each entry
    /// pointing at its node, free list and live nodes covering the slab exactly.
    fn assert_consistent<K: Hash + Eq + Clone + fmt::Debug, V: Clone>(store: &MemoryStore<K, V>) {
        let queue = store.lock_queue();
        let mut forward = Vec::new();
        let (mut idx, mut prev) = (queue.oldest, NIL);
        while idx != NIL {
            let node = &queue.nodes[idx as usize];
            assert_eq!(node.older, prev);
            let key = node.key.clone().expect("linked node without key");
            assert_eq!(
                store.map.get(&key).expect("queued key not in map").node,
                idx
            );
            forward.push(key);
            (prev, idx) = (idx, node.newer);
        }
        assert_eq!(prev, queue.newest);
        let mut backward = Vec::new();
        let mut idx = queue.newest;
        while idx != NIL {
            backward.push(queue.nodes[idx as usize].key.clone().unwrap());
            idx = queue.nodes[idx as usize].older;
        }
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), queue.len);
        assert_eq!(store.map.len(), queue.len);
        assert_eq!(store.len(), queue.len);
        let mut free = 0;
        let mut idx = queue.free;
        while idx != NIL {
            assert!(queue.nodes[idx as usize].key.is_none());
            free += 1;
            idx = queue.nodes[idx as usize].newer;
        }
        assert_eq!(free + queue.len, queue.nodes.len());
        assert!(queue.hand == NIL || queue.nodes[queue.hand as usize].key.is_some());
    }

    #[test]
    fn queue_and_map_stay_consistent_under_mixed_operations() {
        let store = MemoryStore::builder().capacity(16).build();
        // A fixed xorshift sequence: reproducible, yet covers every operation mix.
        let mut state = 0x9e37_79b9_u32;
        for step in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let key = state % 40;
            match state % 100 {
                0 => store.clear().unwrap(),
                1..=15 => {
                    store.remove(&key).unwrap();
                }
                16..=55 => {
                    store.get(&key).unwrap();
                }
                _ => store.insert(key, step, None).unwrap(),
            }
            assert!(store.len() <= 16);
            if step % 97 == 0 {
                assert_consistent(&store);
            }
        }
        assert_consistent(&store);
    }

    #[test]
    fn concurrent_inserts_and_gets_stay_bounded() {
        const THREADS: u64 = 4;
        let store = Arc::new(MemoryStore::builder().capacity(100).build());
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    for i in 0..20_000u64 {
                        // Overlapping key ranges so threads hit each other's keys.
                        let key = (i * 7 + t * 13) % 500;
                        if i % 2 == 0 {
                            store.insert(key, key * 10, None).unwrap();
                        } else if let Some(value) = store.get(&key).unwrap() {
                            assert_eq!(value, key * 10);
                        }
                        if i % 5_000 == 0 {
                            store.remove(&((key + 1) % 500)).unwrap();
                        }
                        assert!(store.len() <= 100);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert!(store.len() <= 100);
        assert_consistent(&store);
        let held = (0..500).filter(|k| store.get(k).unwrap().is_some()).count();
        assert_eq!(held, store.len());
        assert_eq!(store.stats().entries, store.len() as u64);
    }
}
