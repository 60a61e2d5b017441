//! A slow lookup memoized on disk: run it twice and the second process answers every
//! call from the first one's results.
//!
//! ```text
//! cargo run --features disk --example disk_cache            # computes, ~1.5 s
//! cargo run --features disk --example disk_cache            # hits, instantly
//! cargo run --features disk --example disk_cache -- --clear # starts over
//! ```
//!
//! The cache lives in `$TMPDIR/cachemacro-disk-cache-example` unless `CACHE_DIR` names
//! another directory. Entries live for a day, counted across runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, DiskStore};

fn cache_dir() -> PathBuf {
    std::env::var_os("CACHE_DIR").map_or_else(
        || std::env::temp_dir().join("cachemacro-disk-cache-example"),
        PathBuf::from,
    )
}

fn disk_store() -> DiskStore {
    DiskStore::builder(cache_dir())
        .prefix("bookshop")
        .max_bytes(16 * 1024 * 1024)
        .build()
        .unwrap_or_else(|error| panic!("cannot open the cache: {error}"))
}

/// Stands in for a geographic query that takes half a second.
#[memoize(ttl = "1d", store = disk_store())]
fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(500));
    (1..=radius.min(3))
        .map(|n| format!("Bookshop {n} near {postcode} (within {radius} km)"))
        .collect()
}

fn main() {
    if std::env::args().any(|arg| arg == "--clear") {
        nearby_stores::clear();
        println!("cleared the cache in {}", cache_dir().display());
        return;
    }
    println!("cache: {}", cache_dir().display());
    for (postcode, radius) in [
        ("EC1A 1BB", 5),
        ("SW1A 2AA", 2),
        ("EC1A 1BB", 5),
        ("M1 1AE", 10),
    ] {
        let misses_before = nearby_stores::stats().misses;
        let started = Instant::now();
        let shops = nearby_stores(postcode, radius);
        let outcome = if nearby_stores::stats().misses > misses_before {
            "computed"
        } else {
            "hit"
        };
        println!(
            "{postcode} within {radius} km: {outcome} in {:?} ({} shops)",
            started.elapsed(),
            shops.len()
        );
    }
    let stats = nearby_stores::stats();
    println!(
        "hits {}, misses {}, entries on disk {}, store errors {}",
        stats.hits, stats.misses, stats.entries, stats.errors
    );
}
