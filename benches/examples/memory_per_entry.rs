//! Heap bytes per entry beyond the key and the value, at 1M `u64 -> u64`
//! entries, for `MemoryStore` and the peers. Prints a markdown table.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --example memory_per_entry
//! ```
//!
//! A counting global allocator tracks live heap bytes; each store is built, filled with
//! `ENTRIES` distinct keys, measured, and dropped before the next one. The figure includes
//! everything the store allocated (table slack at its current load factor, queues,
//! sketches), which is what a user pays. Stores bounded by a capacity get exactly
//! `ENTRIES`, so none of them evicts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use cachemacro_runtime::{MemoryStore, Store};
use dashmap::DashMap;

/// `System`, counting the bytes currently allocated.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments, so the
// contract of `GlobalAlloc` is `System`'s; the counter has no effect on the allocations.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is, see the impl.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is, see the impl.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is, see the impl.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is, see the impl.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const ENTRIES: usize = 1_000_000;
/// Size of one key plus one value, not counted as overhead.
const PAYLOAD: usize = 2 * size_of::<u64>();

fn key(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Runs `fill`, which builds and fills a store and returns it with the number of entries
/// it reports holding; returns the heap bytes the store holds and that number.
fn measure<S>(fill: impl FnOnce() -> (S, usize)) -> (isize, usize) {
    let before = LIVE_BYTES.load(Relaxed);
    let (store, held) = fill();
    let bytes = LIVE_BYTES.load(Relaxed) - before;
    drop(store);
    (bytes, held)
}

fn main() {
    let rows: Vec<(&str, (isize, usize))> = vec![
        (
            "std HashMap (reference, not a cache)",
            measure(|| {
                let mut map = HashMap::<u64, u64>::new();
                (0..ENTRIES).for_each(|i| {
                    map.insert(key(i), key(i));
                });
                let held = map.len();
                (map, held)
            }),
        ),
        (
            "dashmap 6 alone",
            measure(|| {
                let map = DashMap::<u64, u64>::new();
                (0..ENTRIES).for_each(|i| {
                    map.insert(key(i), key(i));
                });
                let held = map.len();
                (map, held)
            }),
        ),
        (
            "MemoryStore, capacity 1M",
            measure(|| {
                let store = MemoryStore::<u64, u64>::builder().capacity(ENTRIES).build();
                (0..ENTRIES).for_each(|i| store.insert(key(i), key(i), None).unwrap());
                let held = store.len();
                (store, held)
            }),
        ),
        (
            "MemoryStore, unbounded",
            measure(|| {
                let store = MemoryStore::<u64, u64>::new();
                (0..ENTRIES).for_each(|i| store.insert(key(i), key(i), None).unwrap());
                let held = store.len();
                (store, held)
            }),
        ),
        (
            "moka 0.12 sync::Cache, capacity 1M",
            measure(|| {
                let cache = moka::sync::Cache::<u64, u64>::new(ENTRIES as u64);
                (0..ENTRIES).for_each(|i| cache.insert(key(i), key(i)));
                cache.run_pending_tasks();
                let held = cache.entry_count() as usize;
                (cache, held)
            }),
        ),
        (
            "quick_cache 0.7 sync::Cache, capacity 1M",
            measure(|| {
                let cache = quick_cache::sync::Cache::<u64, u64>::new(ENTRIES);
                (0..ENTRIES).for_each(|i| cache.insert(key(i), key(i)));
                let held = cache.len();
                (cache, held)
            }),
        ),
    ];

    println!(
        "Heap bytes per entry at {ENTRIES} u64 -> u64 entries (key + value = {PAYLOAD} bytes).\n"
    );
    println!("| store | entries held | total bytes / entry | overhead bytes / entry |");
    println!("|---|---:|---:|---:|");
    for (name, (bytes, held)) in rows {
        let per_entry = bytes as f64 / held.max(1) as f64;
        println!(
            "| {name} | {held} | {per_entry:.1} | {:.1} |",
            per_entry - PAYLOAD as f64
        );
    }
}
