//! Heap allocations per cache hit, counted by a global allocator (the target: a hit must
//! not allocate). Deterministic, so unlike timings it is immune to a noisy machine.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --example hit_path_allocations
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use cachemacro_runtime::{memoize, MemoryStore, Store};

/// `System`, counting calls that obtain memory (`alloc`, `alloc_zeroed`, `realloc`).
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments, so the
// contract of `GlobalAlloc` is `System`'s; the counter has no effect on the allocations.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: forwarded as is, see the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: forwarded as is, see the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is, see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: forwarded as is, see the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const HITS: u64 = 100_000;

#[memoize(capacity = 1_000)]
fn ours_str(name: &str, n: u32) -> u64 {
    name.len() as u64 + u64::from(n)
}

#[memoize(capacity = 1_000)]
fn ours_u64(id: u64) -> u64 {
    id * 3
}

#[cached::proc_macro::cached(
    max_size = 1_000,
    key = "(String, u32)",
    convert = r#"{ (name.to_owned(), n) }"#
)]
fn cached_str(name: &str, n: u32) -> u64 {
    name.len() as u64 + u64::from(n)
}

#[memoize::memoize(Capacity: 1_000)]
fn memoize_str(name: String, n: u32) -> u64 {
    name.len() as u64 + u64::from(n)
}

/// Allocations per call of `hit`, after one warming call that may miss.
fn per_hit(mut hit: impl FnMut() -> u64) -> f64 {
    black_box(hit());
    let before = ALLOCATIONS.load(Relaxed);
    for _ in 0..HITS {
        black_box(hit());
    }
    (ALLOCATIONS.load(Relaxed) - before) as f64 / HITS as f64
}

fn main() {
    let name = "postcode-00042";
    let owned_key = (name.to_owned(), 7u32);
    let store: MemoryStore<(String, u32), u64> = MemoryStore::builder().capacity(1_000).build();
    store.insert(owned_key.clone(), 1, None).unwrap();
    let moka = moka::sync::Cache::new(1_000);
    moka.insert(owned_key.clone(), 1u64);
    let quick = quick_cache::sync::Cache::new(1_000);
    quick.insert(owned_key.clone(), 1u64);

    let rows: [(&str, f64); 8] = [
        (
            "cachemacro #[memoize] fn(&str, u32)",
            per_hit(|| ours_str(name, 7)),
        ),
        ("cachemacro #[memoize] fn(u64)", per_hit(|| ours_u64(7))),
        (
            "MemoryStore::get(&(String, u32)), key ready-made",
            per_hit(|| store.get(&owned_key).unwrap().unwrap()),
        ),
        (
            "cached #[cached(max_size)] fn(&str, u32)",
            per_hit(|| cached_str(name, 7)),
        ),
        (
            "memoize #[memoize(Capacity)] fn(String, u32), caller's String included",
            per_hit(|| memoize_str(name.to_owned(), 7)),
        ),
        (
            "moka get(&(String, u32)), key ready-made",
            per_hit(|| moka.get(&owned_key).unwrap()),
        ),
        (
            "quick_cache get(&(String, u32)), key ready-made",
            per_hit(|| quick.get(&owned_key).unwrap()),
        ),
        (
            "quick_cache get(&(&str, u32)) via Equivalent, borrowed",
            per_hit(|| quick.get(&BorrowedKey(name, 7)).unwrap()),
        ),
    ];
    println!("| hit through | allocations per hit |");
    println!("|---|---:|");
    for (name, allocations) in rows {
        println!("| {name} | {allocations:.2} |");
    }
}

/// A borrowed view of a `(String, u32)` key: what a lookup from `&str` arguments needs.
#[derive(Hash)]
struct BorrowedKey<'a>(&'a str, u32);

impl quick_cache::Equivalent<(String, u32)> for BorrowedKey<'_> {
    fn equivalent(&self, key: &(String, u32)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}
