//! A bookshop's slow `nearby_stores(postcode, radius)` lookup, memoized.
//!
//! Run with `cargo run --example nearby_stores`: the first call of each key pays for the
//! "database and third-party" work, repeats come from the embedded in-memory store, and
//! eight threads racing on a cold key run the body once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cachemacro_runtime::memoize;

static QUERIES: AtomicUsize = AtomicUsize::new(0);

/// A store near a postcode.
#[derive(Clone, Debug)]
pub struct Shop {
    pub name: String,
    pub distance_km: u32,
}

/// The expensive part of the bookshop's page: a geographic database query plus a
/// third-party request, simulated with a 200 ms pause.
#[memoize(ttl = "15m", capacity = 10_000)]
fn nearby_stores(postcode: &str, radius: u32) -> Vec<Shop> {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(200));
    (1..=radius.min(3))
        .map(|n| Shop {
            name: format!("Books of {postcode} #{n}"),
            distance_km: n * radius / 3,
        })
        .collect()
}

fn timed<T>(label: &str, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = call();
    println!(
        "{label:<42} {:>10.3} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    value
}

fn main() {
    println!("#[memoize(ttl = \"15m\", capacity = 10_000)] fn nearby_stores(postcode, radius)\n");
    let shops = timed("first call  nearby_stores(\"EC1A 1BB\", 5)", || {
        nearby_stores("EC1A 1BB", 5)
    });
    timed("repeat call nearby_stores(\"EC1A 1BB\", 5)", || {
        nearby_stores("EC1A 1BB", 5)
    });
    timed("new key     nearby_stores(\"EC1A 1BB\", 15)", || {
        nearby_stores("EC1A 1BB", 15)
    });
    println!("\nfound {} shops, nearest: {:?}", shops.len(), shops[0]);

    // The thundering herd: many requests miss the same key together.
    let barrier = Arc::new(Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                nearby_stores("SW1A 1AA", 2).len()
            })
        })
        .collect();
    timed("8 threads racing on a cold key", || {
        racers.into_iter().for_each(|racer| {
            racer.join().expect("racer finished");
        })
    });

    assert!(nearby_stores::invalidate("EC1A 1BB", 5));
    let stats = nearby_stores::stats();
    println!(
        "\nqueries run: {} | hits: {} (of which waited on a racer: {}) | misses: {} | entries: {}",
        QUERIES.load(Ordering::SeqCst),
        stats.hits,
        stats.coalesced,
        stats.misses,
        stats.entries,
    );
}
