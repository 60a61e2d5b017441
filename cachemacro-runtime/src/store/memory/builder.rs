//! [`MemoryStoreBuilder`]: the settings of a memory store, and how its bounds are split
//! between shards.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use super::removal::{Listener, RemovalCause};
use super::shard::Shard;
use super::sharded::{nanos, MemoryStore, Padded};
use super::slab::MAX_SHARD_ENTRIES;
use super::weigher::Weigher;

/// A bounded store gets fewer shards when its capacity is small, so that every shard
/// holds at least this many entries: S3-FIFO needs room for its small queue, and many
/// tiny independent caches would make the hit ratio depend on how keys fall on shards.
pub(super) const MIN_SHARD_CAPACITY: usize = 256;

/// The same for a bound on weight: every shard gets at least this much of `max_bytes`
/// (fewer shards below twice that). An entry heavier than its shard's budget cannot be
/// stored, so the budget must stay well above typical entries; 64 KiB still holds a few
/// hundred entries of a couple of hundred bytes.
pub(super) const MIN_SHARD_WEIGHT: u64 = 64 * 1024;

/// Configures a [`MemoryStore`]: bounds on entries and on their total weight, default time
/// to live, time to idle, removal listener.
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
    max_bytes: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    listener: Option<Listener<K, V>>,
    // `fn() -> _`: the builder holds no `K` or `V`, so it is `Send + Sync` regardless.
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> MemoryStoreBuilder<K, V> {
    /// A builder with every setting unset: an unbounded store without expiry.
    pub(super) fn new() -> Self {
        MemoryStoreBuilder {
            capacity: None,
            max_bytes: None,
            weigher: None,
            ttl: None,
            tti: None,
            listener: None,
            types: PhantomData,
        }
    }

    /// Bounds the store to `entries` entries; inserting a new key into a full store evicts
    /// one by S3-FIFO. `0` means the store holds nothing: inserts are accepted and dropped,
    /// every read misses (a way to disable caching from configuration).
    ///
    /// The bound is split evenly between the store's shards (one for capacities below
    /// 512), each evicting on its own, so a store can evict while another shard still has
    /// room; it never holds more than `entries`.
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

    /// Bounds the total weight of the entries to `bytes`; inserting evicts by S3-FIFO,
    /// in the same order as for [`capacity`](Self::capacity), until the new entry fits.
    /// Combines with `capacity`: both bounds then hold. Entries weigh what the
    /// [`weigher`](Self::weigher) says; without one, their shallow size,
    /// `size_of::<K>() + size_of::<V>()`: heap data is not counted, pass a weigher for
    /// that.
    ///
    /// The bound is split evenly between the store's shards (one below 128 KiB, and
    /// never more shards than `capacity` allows), each evicting on its own, so a store can
    /// evict while another shard still has room; it never holds more than `bytes`. An
    /// entry heavier than its shard's share is not stored: the insert succeeds, the key is
    /// then absent and every read misses, as with a capacity of 0 (an old value under the
    /// same key is removed, reported as [`RemovalCause::Replaced`]).
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// // Bounded by the length of the values, not by their number.
    /// let store = MemoryStore::builder()
    ///     .max_bytes(100)
    ///     .weigher(|_key: &u32, value: &String| value.len() as u32)
    ///     .build();
    /// for n in 0..50 {
    ///     store.insert(n, "x".repeat(10), None).unwrap();
    /// }
    /// assert_eq!(store.len(), 10);
    /// assert_eq!(store.weighted_size(), 100);
    ///
    /// // Heavier than the whole budget: not stored.
    /// store.insert(99, "x".repeat(101), None).unwrap();
    /// assert_eq!(store.get(&99).unwrap(), None);
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// The weight of one entry, counted against [`max_bytes`](Self::max_bytes) and by
    /// [`MemoryStore::weighted_size`]. It should be a pure function of the key and the
    /// value, and quick: it runs on every insert, before any lock is taken. Without
    /// `max_bytes`, the store is not bounded by weight but still sums the weights.
    ///
    /// ```
    /// use cachemacro_runtime::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::builder()
    ///     .max_bytes(64 * 1024)
    ///     .weigher(|key: &String, value: &Vec<u8>| (key.len() + value.len()) as u32)
    ///     .build();
    /// store.insert("page".to_owned(), vec![0; 1_000], None).unwrap();
    /// assert_eq!(store.weighted_size(), 1_004);
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Weigher::Custom(Arc::new(weigher)));
        self
    }

    /// Default time to live: an entry expires this long after it was inserted, unless
    /// [`Store::insert`](crate::Store::insert) gives it a time to live of its own.
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

    /// Calls `listener` once for every entry that leaves the store, with its key, its
    /// value and why ([`RemovalCause`]); for [`RemovalCause::Replaced`], with the old
    /// value. It runs on the thread whose call removed the entry, after the store's locks
    /// are released, so it may use the store; it should be quick, as that call waits for
    /// it. An expired entry is reported when a write purges it, not when a read first
    /// misses it.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use cachemacro_runtime::{MemoryStore, RemovalCause, Store};
    ///
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&evicted);
    /// let store = MemoryStore::builder()
    ///     .capacity(1)
    ///     .on_removal(move |_key: &u32, _value: &u32, cause| {
    ///         if cause == RemovalCause::Evicted {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build();
    /// store.insert(1, 1, None).unwrap();
    /// store.insert(2, 2, None).unwrap();
    /// assert_eq!(evicted.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_removal(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
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
        let mut shard_count = default_shard_count();
        let too_small = |shard_count: usize| {
            self.capacity
                .is_some_and(|capacity| capacity / shard_count < MIN_SHARD_CAPACITY)
                || self
                    .max_bytes
                    .is_some_and(|bytes| bytes / (shard_count as u64) < MIN_SHARD_WEIGHT)
        };
        while shard_count > 1 && too_small(shard_count) {
            shard_count /= 2;
        }
        let weigher = match (self.weigher, self.max_bytes) {
            (Some(weigher), _) => Some(weigher),
            (None, Some(_)) => {
                let shallow = mem::size_of::<K>() + mem::size_of::<V>();
                Some(Weigher::Shallow(u32::try_from(shallow).unwrap_or(u32::MAX)))
            }
            (None, None) => None,
        };
        let shards = (0..shard_count)
            .map(|index| {
                let max_weight = self.max_bytes.map(|bytes| {
                    let count = shard_count as u64;
                    bytes / count + u64::from((index as u64) < bytes % count)
                });
                let (capacity, bounded) = match self.capacity {
                    Some(capacity) => {
                        let share =
                            capacity / shard_count + usize::from(index < capacity % shard_count);
                        (share.min(MAX_SHARD_ENTRIES), true)
                    }
                    None => (MAX_SHARD_ENTRIES, false),
                };
                let shard = Shard::new(capacity, bounded, weigher.is_some(), max_weight);
                Padded(RwLock::new(shard))
            })
            .collect();
        MemoryStore {
            shards,
            shard_shift: 32 - shard_count.trailing_zeros(),
            hasher: foldhash::fast::RandomState::default(),
            capacity: self.capacity,
            max_bytes: self.max_bytes,
            weigher,
            ttl: self.ttl,
            tti: self.tti,
            tti_nanos: self.tti.map(nanos),
            base: Instant::now(),
            entries: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            listener: self.listener,
        }
    }
}

impl<K, V> fmt::Debug for MemoryStoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreBuilder")
            .field("capacity", &self.capacity)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish()
    }
}

/// Shards per store: 4 per CPU, as dashmap does, computed once per process.
pub(super) fn default_shard_count() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        (std::thread::available_parallelism().map_or(1, usize::from) * 4).next_power_of_two()
    })
}
