//! Hit, miss and error counters of one cache: a memoized function or a page cache.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StoreStats;

/// A snapshot of a memoized function's counters, returned by the generated `f::stats()`.
///
/// ```
/// use cachemacro_runtime::memoize;
///
/// #[memoize]
/// fn double(n: u32) -> u32 {
///     n * 2
/// }
///
/// double(1);
/// double(1);
/// double(2);
/// let stats = double::stats();
/// assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 2));
/// assert!((stats.hit_ratio() - 1.0 / 3.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered without running the body: from the store, or by waiting for another
    /// caller's computation of the same key (see `coalesced`).
    pub hits: u64,
    /// Calls that ran the body.
    pub misses: u64,
    /// Of the `hits`, those that waited for a concurrent caller's computation instead of
    /// running the body themselves (single-flight).
    pub coalesced: u64,
    /// Stale values served: of the `hits`, those served while another caller refreshed
    /// them (`#[memoize(stale = ..)]`, a page's stale window); and, of the `misses`,
    /// pages whose `stale-if-error` let them answer in place of a refresh that failed.
    pub stale: u64,
    /// Of the `misses`, those that a conditional request settled: the page cache asked
    /// the handler whether its stale page was still current, and a `304 Not Modified`
    /// refreshed the stored page instead of a render (page caches only).
    pub revalidated: u64,
    /// Values written to the store.
    pub inserts: u64,
    /// Store faults (unreachable, timed out, corrupt data) that were swallowed by
    /// computing the value instead.
    pub errors: u64,
    /// Entries currently in the store, as the store reports them.
    pub entries: u64,
    /// Entries the store evicted to respect its capacity.
    pub evictions: u64,
    /// Entries the store removed because they expired.
    pub expirations: u64,
}

impl CacheStats {
    /// Hits divided by all calls; `0.0` before the first call.
    ///
    /// ```
    /// use cachemacro_runtime::memoize;
    ///
    /// #[memoize]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// square(3);
    /// square(3);
    /// square(3);
    /// square(4);
    /// assert_eq!(square::stats().hit_ratio(), 0.5);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let calls = self.hits + self.misses;
        if calls == 0 {
            0.0
        } else {
            self.hits as f64 / calls as f64
        }
    }

    pub(crate) fn merge(self, other: CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits + other.hits,
            misses: self.misses + other.misses,
            coalesced: self.coalesced + other.coalesced,
            stale: self.stale + other.stale,
            revalidated: self.revalidated + other.revalidated,
            inserts: self.inserts + other.inserts,
            errors: self.errors + other.errors,
            entries: self.entries + other.entries,
            evictions: self.evictions + other.evictions,
            expirations: self.expirations + other.expirations,
        }
    }
}

/// Hits are counted on every call of a hot function, from every thread: a single shared
/// counter would move its cache line between cores on each hit. Each thread adds to its
/// own stripe instead, and a snapshot sums them.
const HIT_STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))] // one stripe per cache line (two on CPUs that prefetch in pairs)
struct HitStripe(AtomicU64);

#[inline]
fn hit_stripe() -> usize {
    static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STRIPE: usize = (NEXT_THREAD.fetch_add(1, Ordering::Relaxed) as usize) % HIT_STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

/// The live counters behind [`CacheStats`]; relaxed atomics, as they only feed reports.
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    hits: [HitStripe; HIT_STRIPES],
    misses: AtomicU64,
    coalesced: AtomicU64,
    stale: AtomicU64,
    revalidated: AtomicU64,
    inserts: AtomicU64,
    errors: AtomicU64,
}

impl StatsCounters {
    #[inline]
    pub(crate) fn hit(&self) {
        self.hits[hit_stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn coalesced(&self) {
        self.hit();
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stale(&self) {
        self.hit();
        self.stale.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn revalidated(&self) {
        self.revalidated.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn insert(&self) {
        self.inserts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, store: StoreStats) -> CacheStats {
        CacheStats {
            hits: self
                .hits
                .iter()
                .map(|stripe| stripe.0.load(Ordering::Relaxed))
                .sum(),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            revalidated: self.revalidated.load(Ordering::Relaxed),
            inserts: self.inserts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            entries: store.entries,
            evictions: store.evictions,
            expirations: store.expirations,
        }
    }
}
