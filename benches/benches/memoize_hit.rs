//! The hit path, hot-key throughput and the miss+insert path of `#[memoize]` and its
//! `MemoryStore`, next to the crates a user would pick instead. The targets: a hit within
//! 1.5x of a bare `DashMap` lookup, a hot key that scales across threads (no global lock),
//! an insert into a full cache that is O(1) amortised; BENCHMARKS.md has the figures.
//!
//! Run (short, for a shared 2-core machine):
//!
//! ```text
//! cargo bench -p cachemacro-benches --bench memoize_hit -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Values are `u64` everywhere so that the numbers measure the cache, not the clone of an
//! expensive value. Every contender is warmed so that the timed loop only hits, cycling
//! over `HOT_KEYS` keys (in cache, but not one single key the branch predictor learns).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, LazyLock};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::{MemoryStore, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;

/// `DashMap` with the hasher `quick_cache` uses, to separate the cost of SipHash (the
/// default of `DashMap`, `MemoryStore` and moka) from the cost of the map itself.
type FoldDashMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

/// Capacity of every bounded cache in the hit benchmarks: larger than the keys used, so
/// nothing is evicted while timing hits.
const CAPACITY: usize = 10_000;
/// Keys cycled through by the hit benchmarks (a power of two for a cheap wrap-around).
const HOT_KEYS: usize = 1_024;
/// Keys hammered by the throughput benchmark: few, so threads really share entries.
const CONTENDED_KEYS: u64 = 16;

/// The "expensive" function every contender memoizes. Cheap here on purpose: only hits
/// are timed, and its result is what the value clone copies.
fn compute(name: &str, n: u32) -> u64 {
    name.len() as u64 * 31 + u64::from(n)
}

fn compute_u64(id: u64) -> u64 {
    id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

// ---- The memoized functions under test -------------------------------------------------

#[cachemacro_runtime::memoize(capacity = 10_000)]
fn ours_str(name: &str, n: u32) -> u64 {
    compute(name, n)
}

#[cachemacro_runtime::memoize(capacity = 10_000)]
fn ours_u64(id: u64) -> u64 {
    compute_u64(id)
}

/// Separate from `ours_u64` so the throughput run does not share entries with the hit run.
#[cachemacro_runtime::memoize(capacity = 10_000)]
fn ours_u64_contended(id: u64) -> u64 {
    compute_u64(id)
}

/// Only ever called with fresh keys: every call misses, computes and evicts.
#[cachemacro_runtime::memoize(capacity = 10_000)]
fn ours_u64_miss(id: u64) -> u64 {
    compute_u64(id)
}

// `cached` 4 renamed `size` to `max_size`: same LRU store behind a global `Mutex`. A `&str`
// argument needs an explicit owned key.
#[cached::proc_macro::cached(
    max_size = 10_000,
    key = "(String, u32)",
    convert = r#"{ (name.to_owned(), n) }"#
)]
fn cached_str(name: &str, n: u32) -> u64 {
    compute(name, n)
}

#[cached::proc_macro::cached(max_size = 10_000)]
fn cached_u64(id: u64) -> u64 {
    compute_u64(id)
}

#[cached::proc_macro::cached(max_size = 10_000)]
fn cached_u64_contended(id: u64) -> u64 {
    compute_u64(id)
}

// `memoize` keys by cloned arguments and cannot store a borrowed `&str` (its cache is a
// `static`), so the caller passes an owned `String`. Its default cache is thread-local,
// which is what `#[memoize(Capacity: ..)]` gives a user.
#[memoize::memoize(Capacity: 10_000)]
fn memoize_str(name: String, n: u32) -> u64 {
    compute(&name, n)
}

#[memoize::memoize(Capacity: 10_000)]
fn memoize_u64(id: u64) -> u64 {
    compute_u64(id)
}

// ---- Inputs -------------------------------------------------------------------------------

static STR_KEYS: LazyLock<Vec<(String, u32)>> = LazyLock::new(|| {
    (0..HOT_KEYS as u32)
        .map(|n| (format!("postcode-{:05}", n * 7), n % 50))
        .collect()
});

fn u64_key(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Runs `op` on keys `0, 1, .., HOT_KEYS - 1, 0, ..` inside `bench`.
fn cycle(b: &mut criterion::Bencher<'_>, mut op: impl FnMut(usize) -> u64) {
    let mut i = 0;
    b.iter(|| {
        i = (i + 1) & (HOT_KEYS - 1);
        black_box(op(black_box(i)))
    });
}

// ---- Goal 1: single-thread hit latency ----------------------------------------------------

fn hit_str_u32(c: &mut Criterion) {
    let keys = &*STR_KEYS;
    let mut group = c.benchmark_group("hit/(String,u32)");
    group.throughput(Throughput::Elements(1));

    let dashmap: DashMap<(String, u32), u64> = DashMap::new();
    let folded: FoldDashMap<(String, u32), u64> = FoldDashMap::default();
    let store: MemoryStore<(String, u32), u64> = MemoryStore::builder().capacity(CAPACITY).build();
    let moka = moka::sync::Cache::new(CAPACITY as u64);
    let quick = quick_cache::sync::Cache::new(CAPACITY);
    for (name, n) in keys {
        let (key, value) = ((name.clone(), *n), compute(name, *n));
        dashmap.insert(key.clone(), value);
        folded.insert(key.clone(), value);
        store.insert(key.clone(), value, None).unwrap();
        moka.insert(key.clone(), value);
        quick.insert(key, value);
        ours_str(name, *n);
        cached_str(name, *n);
        memoize_str(name.clone(), *n);
    }
    assert_eq!(ours_str::stats().misses, HOT_KEYS as u64);

    // The target's baseline: a lookup with a ready-made key, and a copy of the value.
    group.bench_function("dashmap_get_clone", |b| {
        cycle(b, |i| *dashmap.get(&keys[i]).unwrap())
    });
    group.bench_function("dashmap_foldhash_get_clone", |b| {
        cycle(b, |i| *folded.get(&keys[i]).unwrap())
    });
    // Same, but the key is built from the borrowed arguments, as a memoized call must.
    group.bench_function("dashmap_get_clone_owned_key", |b| {
        cycle(b, |i| {
            let (name, n) = &keys[i];
            *dashmap.get(&(name.as_str().to_owned(), *n)).unwrap()
        })
    });
    group.bench_function("cachemacro_memoize", |b| {
        cycle(b, |i| ours_str(&keys[i].0, keys[i].1))
    });
    group.bench_function("cachemacro_memory_store_get", |b| {
        cycle(b, |i| store.get(&keys[i]).unwrap().unwrap())
    });
    group.bench_function("cached_max_size", |b| {
        cycle(b, |i| cached_str(&keys[i].0, keys[i].1))
    });
    group.bench_function("memoize_capacity", |b| {
        cycle(b, |i| memoize_str(keys[i].0.clone(), keys[i].1))
    });
    group.bench_function("moka_sync_get", |b| {
        cycle(b, |i| moka.get(&keys[i]).unwrap())
    });
    group.bench_function("quick_cache_sync_get", |b| {
        cycle(b, |i| quick.get(&keys[i]).unwrap())
    });
    group.finish();
}

fn hit_u64(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit/u64");
    group.throughput(Throughput::Elements(1));

    let dashmap: DashMap<u64, u64> = DashMap::new();
    let folded: FoldDashMap<u64, u64> = FoldDashMap::default();
    let store: MemoryStore<u64, u64> = MemoryStore::builder().capacity(CAPACITY).build();
    let moka = moka::sync::Cache::new(CAPACITY as u64);
    let quick = quick_cache::sync::Cache::new(CAPACITY);
    for i in 0..HOT_KEYS {
        let key = u64_key(i);
        let value = compute_u64(key);
        dashmap.insert(key, value);
        folded.insert(key, value);
        store.insert(key, value, None).unwrap();
        moka.insert(key, value);
        quick.insert(key, value);
        ours_u64(key);
        cached_u64(key);
        memoize_u64(key);
    }
    assert_eq!(ours_u64::stats().misses, HOT_KEYS as u64);

    group.bench_function("dashmap_get_clone", |b| {
        cycle(b, |i| *dashmap.get(&u64_key(i)).unwrap())
    });
    group.bench_function("dashmap_foldhash_get_clone", |b| {
        cycle(b, |i| *folded.get(&u64_key(i)).unwrap())
    });
    group.bench_function("cachemacro_memoize", |b| cycle(b, |i| ours_u64(u64_key(i))));
    group.bench_function("cachemacro_memory_store_get", |b| {
        cycle(b, |i| store.get(&u64_key(i)).unwrap().unwrap())
    });
    group.bench_function("cached_max_size", |b| cycle(b, |i| cached_u64(u64_key(i))));
    group.bench_function("memoize_capacity", |b| {
        cycle(b, |i| memoize_u64(u64_key(i)))
    });
    group.bench_function("moka_sync_get", |b| {
        cycle(b, |i| moka.get(&u64_key(i)).unwrap())
    });
    group.bench_function("quick_cache_sync_get", |b| {
        cycle(b, |i| quick.get(&u64_key(i)).unwrap())
    });
    group.finish();
}

// ---- Goal 1: hot-key throughput by thread count -------------------------------------------

/// Times `threads` threads each doing `iters` hits through `op`, all released at once by
/// a barrier. Throughput is set to `threads` elements per iteration, so criterion's
/// "elem/s" is the total hits per second over all threads.
fn hammer(threads: usize, iters: u64, op: &(impl Fn(u64) -> u64 + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut key = t as u64;
                    for _ in 0..iters {
                        key = (key + 1) % CONTENDED_KEYS;
                        black_box(op(black_box(key)));
                    }
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        started.elapsed()
    })
}

fn hot_key_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput/u64_hot_keys");
    let dashmap: DashMap<u64, u64> = DashMap::new();
    let store: MemoryStore<u64, u64> = MemoryStore::builder().capacity(CAPACITY).build();
    let moka = moka::sync::Cache::new(CAPACITY as u64);
    let quick = quick_cache::sync::Cache::new(CAPACITY);
    for key in 0..CONTENDED_KEYS {
        let value = compute_u64(key);
        dashmap.insert(key, value);
        store.insert(key, value, None).unwrap();
        moka.insert(key, value);
        quick.insert(key, value);
        ours_u64_contended(key);
        cached_u64_contended(key);
    }
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        let id = |name: &str| BenchmarkId::new(name, format!("{threads}_threads"));
        group.bench_function(id("dashmap_get_clone"), |b| {
            b.iter_custom(|iters| hammer(threads, iters, &|k| *dashmap.get(&k).unwrap()))
        });
        group.bench_function(id("cachemacro_memoize"), |b| {
            b.iter_custom(|iters| hammer(threads, iters, &ours_u64_contended))
        });
        // The store alone: the difference to the line above is the memoization layer.
        group.bench_function(id("cachemacro_memory_store_get"), |b| {
            b.iter_custom(|iters| hammer(threads, iters, &|k| store.get(&k).unwrap().unwrap()))
        });
        group.bench_function(id("cached_max_size"), |b| {
            b.iter_custom(|iters| hammer(threads, iters, &cached_u64_contended))
        });
        group.bench_function(id("moka_sync_get"), |b| {
            b.iter_custom(|iters| hammer(threads, iters, &|k| moka.get(&k).unwrap()))
        });
        group.bench_function(id("quick_cache_sync_get"), |b| {
            b.iter_custom(|iters| hammer(threads, iters, &|k| quick.get(&k).unwrap()))
        });
    }
    group.finish();
}

// ---- Goal 4: miss + insert into a full cache (every insert evicts) ------------------------

fn miss_insert_evict(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss_insert_evict/u64");
    group.throughput(Throughput::Elements(1));

    // Fresh keys come from one counter per contender, above the prefilled range.
    let fresh = |next: &AtomicU64| next.fetch_add(1, Ordering::Relaxed);

    let store: MemoryStore<u64, u64> = MemoryStore::builder().capacity(CAPACITY).build();
    let moka = moka::sync::Cache::new(CAPACITY as u64);
    let quick = quick_cache::sync::Cache::new(CAPACITY);
    for key in 0..CAPACITY as u64 {
        store.insert(key, key, None).unwrap();
        moka.insert(key, key);
        quick.insert(key, key);
        ours_u64_miss(key);
    }
    moka.run_pending_tasks();

    let next = AtomicU64::new(CAPACITY as u64);
    group.bench_function("cachemacro_memoize_miss", |b| {
        b.iter(|| black_box(ours_u64_miss(fresh(&next))))
    });
    let next = AtomicU64::new(CAPACITY as u64);
    group.bench_function("cachemacro_memory_store_insert", |b| {
        b.iter(|| {
            let key = fresh(&next);
            store.insert(key, key, None).unwrap()
        })
    });
    let next = AtomicU64::new(CAPACITY as u64);
    group.bench_function("moka_sync_insert", |b| {
        b.iter(|| {
            let key = fresh(&next);
            moka.insert(key, key)
        })
    });
    let next = AtomicU64::new(CAPACITY as u64);
    group.bench_function("quick_cache_sync_insert", |b| {
        b.iter(|| {
            let key = fresh(&next);
            quick.insert(key, key)
        })
    });
    group.finish();
    assert!(store.len() <= CAPACITY);
    assert!(ours_u64_miss::stats().entries <= CAPACITY as u64);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = hit_str_u32, hit_u64, hot_key_throughput, miss_insert_evict
}
criterion_main!(benches);
