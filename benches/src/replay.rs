//! Replaying a key trace through a cache as a memoizing cache uses it: a lookup, and on a
//! miss an insert. Every policy sees the same trace, and hits are counted from the first
//! access (cold misses included), so the figures of different policies compare directly.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use cachemacro_runtime::{MemoryStore, Store};

use crate::belady::belady_hits;

/// A cache policy a trace can be replayed through.
///
/// ```
/// use cachemacro_benches::replay::Policy;
///
/// assert_eq!(Policy::QuickCache.to_string(), "quick_cache");
/// assert_eq!(Policy::ALL.len(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Bélády's MIN with bypass, computed offline: the bound.
    Belady,
    /// Exact LRU (the `lru` crate).
    Lru,
    /// moka's `sync::Cache` (W-TinyLFU), run as a user runs it.
    Moka,
    /// quick_cache's `sync::Cache` (CLOCK-Pro-like S3-FIFO).
    QuickCache,
    /// cachemacro's own `MemoryStore`.
    MemoryStore,
}

impl Policy {
    /// Every policy, in the order the tables print them.
    pub const ALL: [Policy; 5] = [
        Policy::Belady,
        Policy::Lru,
        Policy::Moka,
        Policy::QuickCache,
        Policy::MemoryStore,
    ];

    /// Whether this policy is one of the peers `MemoryStore` is measured against.
    ///
    /// ```
    /// use cachemacro_benches::replay::Policy;
    ///
    /// assert!(Policy::Moka.is_peer());
    /// assert!(!Policy::Lru.is_peer());
    /// ```
    pub fn is_peer(self) -> bool {
        matches!(self, Policy::Moka | Policy::QuickCache)
    }

    /// Replays `trace` through a cache of `capacity` entries (at least 1) of this policy.
    ///
    /// ```
    /// use cachemacro_benches::replay::Policy;
    ///
    /// let trace = [1, 2, 1, 2, 1, 2];
    /// let replay = Policy::Lru.replay(&trace, 2);
    /// assert_eq!(replay.hits, 4);
    /// assert!((replay.hit_ratio() - 4.0 / 6.0).abs() < 1e-9);
    /// ```
    pub fn replay(self, trace: &[u64], capacity: usize) -> Replay {
        let started = Instant::now();
        let hits = match self {
            Policy::Belady => belady_hits(trace, capacity),
            Policy::Lru => {
                let capacity = NonZeroUsize::new(capacity).expect("capacity > 0");
                let mut lru = lru::LruCache::new(capacity);
                count_hits(trace, |key| {
                    if lru.get(&key).is_some() {
                        true
                    } else {
                        lru.put(key, key);
                        false
                    }
                })
            }
            Policy::Moka => {
                // As a user runs it: moka applies its policy in batches on its own schedule.
                let cache = moka::sync::Cache::new(capacity as u64);
                count_hits(trace, |key| {
                    if cache.get(&key).is_some() {
                        true
                    } else {
                        cache.insert(key, key);
                        false
                    }
                })
            }
            Policy::QuickCache => {
                let cache = quick_cache::sync::Cache::new(capacity);
                count_hits(trace, |key| {
                    if cache.get(&key).is_some() {
                        true
                    } else {
                        cache.insert(key, key);
                        false
                    }
                })
            }
            Policy::MemoryStore => {
                let store: MemoryStore<u64, u64> =
                    MemoryStore::builder().capacity(capacity).build();
                count_hits(trace, |key| match store.get(&key) {
                    Ok(Some(_)) => true,
                    _ => {
                        store.insert(key, key, None).expect("memory store insert");
                        false
                    }
                })
            }
        };
        Replay {
            hits,
            requests: trace.len(),
            elapsed: started.elapsed(),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Belady => "Bélády",
            Policy::Lru => "LRU",
            Policy::Moka => "moka",
            Policy::QuickCache => "quick_cache",
            Policy::MemoryStore => "MemoryStore",
        })
    }
}

/// What one replay measured.
///
/// ```
/// use cachemacro_benches::replay::Policy;
///
/// let replay = Policy::MemoryStore.replay(&[7, 7, 7, 7], 16);
/// assert_eq!((replay.hits, replay.requests), (3, 4));
/// assert!(replay.ns_per_request() > 0.0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// Requests served from the cache.
    pub hits: usize,
    /// Requests replayed.
    pub requests: usize,
    /// Wall time of the whole replay, cache construction included; for Bélády, the
    /// offline computation.
    pub elapsed: Duration,
}

impl Replay {
    /// Hits over requests, in `[0, 1]`.
    ///
    /// ```
    /// use cachemacro_benches::replay::Policy;
    ///
    /// assert_eq!(Policy::Belady.replay(&[1, 2, 3], 8).hit_ratio(), 0.0);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        self.hits as f64 / self.requests.max(1) as f64
    }

    /// Mean wall time per request, in nanoseconds.
    ///
    /// ```
    /// use cachemacro_benches::replay::Policy;
    ///
    /// let replay = Policy::Lru.replay(&[1, 2, 3], 8);
    /// assert!(replay.ns_per_request() >= 0.0);
    /// ```
    pub fn ns_per_request(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.requests.max(1) as f64
    }
}

/// Hits of one policy: `access` looks a key up, inserts it on a miss and says whether it
/// hit.
fn count_hits(trace: &[u64], mut access: impl FnMut(u64) -> bool) -> usize {
    trace.iter().filter(|&&key| access(key)).count()
}
