//! Heap allocations per cache hit, counted by a global allocator (the target: a hit must
//! not allocate). Deterministic, so unlike timings it is immune to a noisy machine.
//!
//! With `--features axum`, also per request answered by an axum `Router` (driven as a
//! `tower::Service`, request built beforehand, response dropped unread): the static body
//! (the ceiling), a `PageCacheLayer` hit, a `#[cache_page]` hit, an `axum-response-cache`
//! hit, and `PageCache::serve` alone. Each page row is a function of its own, so that
//! `valgrind --tool=callgrind` run on this program charges each row's instructions to
//! its own frame.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --example hit_path_allocations
//! cargo run -p cachemacro-benches --release --features axum --example hit_path_allocations
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
    #[cfg(feature = "axum")]
    pages::print_rows();
}

/// The page cache's rows: allocations per request answered through axum.
#[cfg(feature = "axum")]
mod pages {
    use std::convert::Infallible;
    use std::hint::black_box;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Path;
    use axum::http::{header::HOST, Request};
    use axum::response::{Html, IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use axum_response_cache::CacheLayer;
    use cachemacro_runtime::{cache_page, PageCache, PageCacheLayer};
    use tokio::runtime::Runtime;
    use tower::ServiceExt;

    use super::{ALLOCATIONS, HITS};

    /// The page of `examples/page_server.rs`: 796 bytes.
    fn page(id: u32) -> String {
        format!(
            "<h1>Book {id}</h1><p>A fine book.</p>{}",
            "<li>\"Loved it\"</li>".repeat(40)
        )
    }

    async fn book(Path(id): Path<u32>) -> Html<String> {
        Html(page(id))
    }

    #[cache_page(ttl = "1h")]
    async fn macro_book(Path(id): Path<u32>) -> Html<String> {
        Html(page(id))
    }

    /// As a load generator sends it: a path and a `Host`.
    fn request<B: Default>(path: &str) -> Request<B> {
        Request::get(path)
            .header(HOST, "127.0.0.1:3001")
            .body(B::default())
            .unwrap()
    }

    /// Allocations per request answered by `router` for `path`, after one warming
    /// request (the miss); the requests are built before counting.
    fn per_request(runtime: &Runtime, router: &Router, path: &str) -> f64 {
        runtime
            .block_on(router.clone().oneshot(request::<Body>(path)))
            .unwrap();
        let requests: Vec<Request<Body>> = (0..HITS).map(|_| request(path)).collect();
        let before = ALLOCATIONS.load(Relaxed);
        for request in requests {
            black_box(runtime.block_on(router.clone().oneshot(request)).unwrap());
        }
        (ALLOCATIONS.load(Relaxed) - before) as f64 / HITS as f64
    }

    #[inline(never)]
    fn static_body(runtime: &Runtime) -> f64 {
        let ceiling: &'static str = Box::leak(page(312).into_boxed_str());
        let router = Router::new().route("/static/{id}", get(move || async move { Html(ceiling) }));
        per_request(runtime, &router, "/static/312")
    }

    #[inline(never)]
    fn layer_hit(runtime: &Runtime) -> f64 {
        let router = Router::new()
            .route("/layer/{id}", get(book))
            .layer(PageCacheLayer::new().ttl(Duration::from_secs(3600)));
        per_request(runtime, &router, "/layer/312")
    }

    #[inline(never)]
    fn macro_hit(runtime: &Runtime) -> f64 {
        let router = Router::new().route("/macro/{id}", get(macro_book));
        per_request(runtime, &router, "/macro/312")
    }

    #[inline(never)]
    fn peer_hit(runtime: &Runtime) -> f64 {
        let router = Router::new()
            .route("/peer/{id}", get(book))
            .layer(CacheLayer::with_lifespan(Duration::from_secs(3600)));
        per_request(runtime, &router, "/peer/312")
    }

    /// `PageCache::serve` without axum: the request is a `Request<()>`.
    #[inline(never)]
    fn serve_alone(runtime: &Runtime) -> f64 {
        let cache = PageCache::new().ttl(Duration::from_secs(3600));
        let render = |_request: Request<()>| async {
            Ok::<Response, Infallible>(Html(page(312)).into_response())
        };
        runtime
            .block_on(cache.serve(request("/books/312"), render))
            .unwrap();
        let requests: Vec<Request<()>> = (0..HITS).map(|_| request("/books/312")).collect();
        let before = ALLOCATIONS.load(Relaxed);
        for request in requests {
            black_box(runtime.block_on(cache.serve(request, render)).unwrap());
        }
        (ALLOCATIONS.load(Relaxed) - before) as f64 / HITS as f64
    }

    pub(super) fn print_rows() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let rows: [(&str, f64); 5] = [
            (
                "axum Router, static body (the ceiling)",
                static_body(&runtime),
            ),
            ("axum Router, `PageCacheLayer` hit", layer_hit(&runtime)),
            ("axum Router, `#[cache_page]` hit", macro_hit(&runtime)),
            ("axum Router, `axum-response-cache` hit", peer_hit(&runtime)),
            (
                "`PageCache::serve` hit alone, no axum",
                serve_alone(&runtime),
            ),
        ];
        println!();
        println!("| page request through | allocations per request |");
        println!("|---|---:|");
        for (name, allocations) in rows {
            println!("| {name} | {allocations:.2} |");
        }
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
