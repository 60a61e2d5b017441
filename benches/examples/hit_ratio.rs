//! Hit ratio of `MemoryStore`'s eviction policy next to exact LRU,
//! `moka`, `quick_cache` and Bélády's optimal, on synthetic traces. Prints a markdown table.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --example hit_ratio
//! cargo run -p cachemacro-benches --release --example hit_ratio -- --loop-seeds 12
//! ```
//!
//! `--loop-seeds N` replays only the loop, through `MemoryStore` alone, `N` times at each
//! size, and prints every replay and their mean: the loop's figure moves with the store's
//! random hash seed (a new one per store) by a point or more, so one replay says little.
//!
//! Every policy sees the same trace, through the access pattern of a memoizing cache: a
//! lookup, and on a miss an insert (`cachemacro_benches::replay`, shared with
//! `examples/trace_replay.rs`). All hits are counted from the first access (cold misses
//! included), for Bélády too, so the columns are directly comparable.
//!
//! Traces (100 000 keys, `TRACE_LEN` accesses, fixed seeds, so every run is identical):
//! - `zipf 0.8`, `zipf 1.0`: independent Zipf draws (rank `k` with weight `1 / k^s`);
//! - `zipf 1.0 + scans`: the same stream, where every 100 000 accesses a scan reads
//!   20 000 keys that never occur again (a batch job, a crawler);
//! - `loop 1.1x`: keys `0..1.1 * cache size` read in order, over and over.

use std::time::Instant;

use cachemacro_benches::replay::Policy;

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

/// The loop's hit ratio through `MemoryStore` at each size, `seeds` replays each (every
/// store draws its own hash seed), printed one per line with their mean and spread.
fn loop_over_seeds(sizes: &[usize], seeds: usize) {
    for &size in sizes {
        let trace = loop_trace(size + size / 10);
        let ratios: Vec<f64> = (0..seeds)
            .map(|_| Policy::MemoryStore.replay(&trace, size).hit_ratio() * 100.0)
            .collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
        let (low, high) = ratios.iter().fold((f64::MAX, f64::MIN), |(low, high), &r| {
            (low.min(r), high.max(r))
        });
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "loop 1.1x, cache {size}: mean {mean:.2} (min {low:.2}, max {high:.2}) over {seeds}: {}",
            each.join(" ")
        );
    }
}

fn main() {
    let started = Instant::now();
    let sizes = [KEY_SPACE / 100, KEY_SPACE / 10];
    let mut args = std::env::args().skip(1);
    if let Some(arg) = args.next() {
        let seeds = match (arg.as_str(), args.next().map(|n| n.parse::<usize>())) {
            ("--loop-seeds", Some(Ok(seeds))) if seeds > 0 => seeds,
            _ => {
                eprintln!("usage: hit_ratio [--loop-seeds N]");
                std::process::exit(2);
            }
        };
        loop_over_seeds(&sizes, seeds);
        eprintln!("\n(ran in {:.1} s)", started.elapsed().as_secs_f64());
        return;
    }
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
            let ratio = |policy: Policy| policy.replay(trace, size).hit_ratio();
            let opt = ratio(Policy::Belady);
            let lru = ratio(Policy::Lru);
            let moka = ratio(Policy::Moka);
            let quick = ratio(Policy::QuickCache);
            let ours = ratio(Policy::MemoryStore);
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
