//! Hit ratio of `MemoryStore`'s eviction policy next to exact LRU,
//! `moka`, `quick_cache` and Bélády's optimal, on synthetic traces. Prints a markdown table.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --example hit_ratio
//! ```
//!
//! Every policy sees the same trace, through the access pattern of a memoizing cache: a
//! lookup, and on a miss an insert. All hits are counted from the first access (cold
//! misses included), for Bélády too, so the columns are directly comparable.
//!
//! Traces (100 000 keys, `TRACE_LEN` accesses, fixed seeds, so every run is identical):
//! - `zipf 0.8`, `zipf 1.0`: independent Zipf draws (rank `k` with weight `1 / k^s`);
//! - `zipf 1.0 + scans`: the same stream, where every 100 000 accesses a scan reads
//!   20 000 keys that never occur again (a batch job, a crawler);
//! - `loop 1.1x`: keys `0..1.1 * cache size` read in order, over and over.

use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::num::NonZeroUsize;
use std::time::Instant;

use cachemacro_runtime::{MemoryStore, Store};

/// Distinct keys of the Zipf traces.
const KEY_SPACE: usize = 100_000;
/// Accesses per trace.
const TRACE_LEN: usize = 1_000_000;
/// A scan of one-time keys is inserted every this many accesses of the polluted trace...
const SCAN_EVERY: usize = 100_000;
/// ...and is this long.
const SCAN_LEN: usize = 20_000;

/// SplitMix64: small, fast, and good enough to drive a sampler; seeded for reproducibility.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks `0..n` by inverse transform on the precomputed CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += (rank as f64).powf(-s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Spreads ranks over the key space so that popular keys are not neighbours in any hash
/// (multiplication by an odd constant is a bijection on `u64`).
fn key_of(rank: usize) -> u64 {
    (rank as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn zipf_trace(s: f64, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(KEY_SPACE, s);
    let mut rng = SplitMix64(seed);
    (0..TRACE_LEN)
        .map(|_| key_of(zipf.sample(&mut rng)))
        .collect()
}

fn scan_polluted_trace(s: f64, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(KEY_SPACE, s);
    let mut rng = SplitMix64(seed);
    // Scan keys come after the Zipf key space and are never reused.
    let mut next_scan_rank = KEY_SPACE;
    let mut trace = Vec::with_capacity(TRACE_LEN);
    while trace.len() < TRACE_LEN {
        if trace.len() % SCAN_EVERY == SCAN_EVERY / 2 {
            for _ in 0..SCAN_LEN.min(TRACE_LEN - trace.len()) {
                trace.push(key_of(next_scan_rank));
                next_scan_rank += 1;
            }
        } else {
            trace.push(key_of(zipf.sample(&mut rng)));
        }
    }
    trace
}

fn loop_trace(len: usize) -> Vec<u64> {
    (0..TRACE_LEN).map(|i| key_of(i % len)).collect()
}

/// Hit ratio of one policy: `access` looks a key up, inserts it on a miss and says
/// whether it hit.
fn hit_ratio(trace: &[u64], mut access: impl FnMut(u64) -> bool) -> f64 {
    let hits = trace.iter().filter(|&&key| access(key)).count();
    hits as f64 / trace.len() as f64
}

fn memory_store(trace: &[u64], capacity: usize) -> f64 {
    let store: MemoryStore<u64, u64> = MemoryStore::builder().capacity(capacity).build();
    hit_ratio(trace, |key| match store.get(&key) {
        Ok(Some(_)) => true,
        _ => {
            store.insert(key, key, None).expect("memory store insert");
            false
        }
    })
}

fn exact_lru(trace: &[u64], capacity: usize) -> f64 {
    let mut lru = lru::LruCache::new(NonZeroUsize::new(capacity).expect("capacity > 0"));
    hit_ratio(trace, |key| {
        if lru.get(&key).is_some() {
            true
        } else {
            lru.put(key, key);
            false
        }
    })
}

fn moka(trace: &[u64], capacity: usize) -> f64 {
    // As a user runs it: moka applies its policy in batches on its own schedule.
    let cache = moka::sync::Cache::new(capacity as u64);
    hit_ratio(trace, |key| {
        if cache.get(&key).is_some() {
            true
        } else {
            cache.insert(key, key);
            false
        }
    })
}

fn quick_cache(trace: &[u64], capacity: usize) -> f64 {
    let cache = quick_cache::sync::Cache::new(capacity);
    hit_ratio(trace, |key| {
        if cache.get(&key).is_some() {
            true
        } else {
            cache.insert(key, key);
            false
        }
    })
}

/// Bélády's MIN with bypass: on a miss with the cache full, the key whose next use is
/// farthest, the incoming one included, is the one left out. An upper bound for every
/// online policy, admission-controlled ones (moka, quick_cache) included.
fn belady(trace: &[u64], capacity: usize) -> f64 {
    const NEVER: usize = usize::MAX;
    let mut next_use = vec![NEVER; trace.len()];
    let mut seen: HashMap<u64, usize> = HashMap::with_capacity(KEY_SPACE);
    for (i, &key) in trace.iter().enumerate().rev() {
        if let Some(later) = seen.insert(key, i) {
            next_use[i] = later;
        }
    }
    drop(seen);
    // Cached key -> its next use; the heap holds (next use, key) with stale pairs skipped.
    let mut cached: HashMap<u64, usize> = HashMap::with_capacity(capacity);
    let mut farthest: BinaryHeap<(usize, u64)> = BinaryHeap::with_capacity(capacity * 2);
    let mut hits = 0usize;
    for (i, &key) in trace.iter().enumerate() {
        let next = next_use[i];
        match cached.entry(key) {
            Entry::Occupied(mut hit) => {
                hits += 1;
                hit.insert(next);
                farthest.push((next, key));
                continue;
            }
            Entry::Vacant(_) if next == NEVER => continue,
            Entry::Vacant(_) => {}
        }
        if cached.len() >= capacity {
            let victim = loop {
                let (victim_next, victim) = farthest.pop().expect("a full cache has entries");
                if cached.get(&victim) == Some(&victim_next) {
                    break (victim_next, victim);
                }
            };
            if victim.0 <= next {
                // Every cached key is needed sooner than the incoming one: bypass it.
                farthest.push(victim);
                continue;
            }
            cached.remove(&victim.1);
        }
        cached.insert(key, next);
        farthest.push((next, key));
        // Keep the lazily deleted pairs bounded.
        if farthest.len() > capacity * 8 {
            farthest = cached.iter().map(|(&k, &n)| (n, k)).collect();
        }
    }
    hits as f64 / trace.len() as f64
}

fn main() {
    let started = Instant::now();
    let sizes = [KEY_SPACE / 100, KEY_SPACE / 10];
    let zipf_08 = zipf_trace(0.8, 1);
    let zipf_10 = zipf_trace(1.0, 2);
    let scans = scan_polluted_trace(1.0, 3);

    println!("Hit ratio (%), {TRACE_LEN} accesses per trace, {KEY_SPACE} keys in the Zipf traces.");
    println!("\"vs best peer\" = MemoryStore minus the better of moka and quick_cache, in percentage points.\n");
    println!("| trace | cache | Bélády | LRU | moka | quick_cache | MemoryStore | vs best peer | vs LRU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, trace) in [
        ("zipf 0.8", Some(&zipf_08)),
        ("zipf 1.0", Some(&zipf_10)),
        ("zipf 1.0 + scans", Some(&scans)),
        ("loop 1.1x", None),
    ] {
        for &size in &sizes {
            let looped;
            let trace = match trace {
                Some(trace) => trace.as_slice(),
                None => {
                    looped = loop_trace(size + size / 10);
                    looped.as_slice()
                }
            };
            let opt = belady(trace, size);
            let lru = exact_lru(trace, size);
            let moka = moka(trace, size);
            let quick = quick_cache(trace, size);
            let ours = memory_store(trace, size);
            let pct = |ratio: f64| ratio * 100.0;
            println!(
                "| {name} | {size} ({}%) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:+.2} | {:+.2} |",
                size * 100 / KEY_SPACE,
                pct(opt),
                pct(lru),
                pct(moka),
                pct(quick),
                pct(ours),
                pct(ours - moka.max(quick)),
                pct(ours - lru),
            );
        }
    }
    eprintln!("\n(ran in {:.1} s)", started.elapsed().as_secs_f64());
}
