//! Memoization and caching for Rust.
//!
//! Put `#[memoize]` on a function and repeated calls with the same arguments return the
//! stored result without running the body:
//!
//! ```
//! use cachemacro_runtime::memoize;
//!
//! #[memoize(ttl = "15m", capacity = 10_000)]
//! fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
//!     // an expensive geographic query would run here
//!     vec![format!("{postcode} high street, within {radius} km")]
//! }
//!
//! let first = nearby_stores("EC1A 1BB", 5); // runs the body
//! let again = nearby_stores("EC1A 1BB", 5); // served from the cache
//! assert_eq!(first, again);
//! assert_eq!(nearby_stores::stats().hits, 1);
//! ```
//!
//! * The arguments become the key (`&str` is stored as `String`, `&[T]` as `Vec<T>`);
//!   `ignore(..)` leaves arguments out and `key = ..` replaces the key.
//! * One caller per key computes at a time (single-flight); the others wait for its value.
//! * A `Result`'s `Err` is returned but not stored.
//! * Every memoized function `f` gets a companion module with `f::invalidate(..)`,
//!   `f::clear()` and `f::stats()`; inside async code use `f::invalidate_async(..)` and
//!   `f::clear_async()`, which do not block the executor on a remote store.
//! * The cache lives in a [`Store`]: the embedded [`MemoryStore`] by default, or any
//!   backend given by `store = ..`. A store fault never fails the function: the value is
//!   computed, the fault counted in [`CacheStats::errors`] and logged with `tracing`.
//!
//! See the [`memoize`] attribute for every option.

mod blocking;
mod flight;
mod key;
mod memoized;
#[cfg(feature = "axum")]
mod page;
mod slot;
mod stats;
mod store;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// What it takes to put a cache on a storage engine of your own: a byte-level [`Backend`]
/// (keys and values arrive encoded), wrapped by [`EncodedStore`] into a typed [`Store`] and
/// [`CacheApi`]; and the crate's own backends, which name the stores' type parameters
/// (`RedisStore` is `EncodedStore<backend::Redis>`).
///
/// [`Backend`]: backend::Backend
#[cfg(feature = "serde")]
pub mod backend {
    pub use crate::store::{
        namespace_of, on_blocking_pool, split_key, Backend, Op, OwnRuntime, Reply, ServerOptions,
    };
    #[cfg(feature = "disk")]
    pub use crate::store::{Disk, DiskOptions};
    #[cfg(feature = "memcached")]
    pub use crate::store::{Memcached, MemcachedOptions};
    #[cfg(feature = "postgres")]
    pub use crate::store::{Postgres, SqlOptions};
    #[cfg(feature = "redis")]
    pub use crate::store::{Redis, RedisOptions};
}

pub use key::KeyRef;
pub use stats::CacheStats;
#[cfg(feature = "postgres")]
pub use store::{SqlStore, SqlStoreBuilder};

/// The cache table of [`SqlStore`] (feature `postgres`): its migration, as Django's
/// `createcachetable`, and the SQL that creates it, for schemas managed by hand.
///
/// ```
/// use cachemacro_runtime::sql;
///
/// assert!(sql::CREATE_TABLE_SQL.contains(sql::DEFAULT_TABLE));
/// ```
#[cfg(feature = "postgres")]
pub mod sql {
    pub use crate::store::sql::{
        create_table_sql, migrate, migrate_table, PgPool, CREATE_TABLE_SQL, DEFAULT_TABLE,
    };
}
pub use store::{
    CacheApi, CasToken, MemoryStore, MemoryStoreBuilder, RemovalCause, Store, StoreError,
    StoreStats,
};
#[cfg(feature = "serde")]
pub use store::{Codec, EncodedStore, MessagePack, StoreBuilder};
#[cfg(feature = "disk")]
pub use store::{DiskStore, DiskStoreBuilder};
#[cfg(feature = "memcached")]
pub use store::{MemcachedStore, MemcachedStoreBuilder};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreBuilder};

#[cfg(feature = "axum")]
pub use page::{
    CachedPage, PageCache, PageCacheFuture, PageCacheLayer, PageCacheMode, PageCacheService,
    PageKey, RouteKeys,
};

/// Caches the whole response of an axum handler (feature `axum`): Django's
/// `@cache_page(60 * 15)`, with the HTTP rules of [`PageCache`].
///
/// ```
/// use axum::{extract::Path, routing::get, Router};
/// use cachemacro_runtime::cache_page;
///
/// #[cache_page(ttl = "15m", stale = "5m", vary = ["Accept-Language"])]
/// async fn book(Path(id): Path<u32>) -> String {
///     // two database calls and a template would run here
///     format!("<h1>Book {id}</h1>")
/// }
///
/// let app: Router = Router::new().route("/books/{id}", get(book));
/// // Companions: `book::invalidate("http://shop.example/books/312")`, `book::clear()`,
/// // `book::stats()`.
/// assert_eq!(book::stats().hits, 0);
/// # let _ = app;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // In async code, such as the handler of a write:
/// assert!(!book::invalidate_async("http://shop.example/books/312").await);
/// book::clear_async().await;
/// # });
/// ```
///
/// # Companions
///
/// A handler `h` gets a module `h` with `h::invalidate(uri: &str) -> bool`, `h::clear()`
/// and `h::stats()`; inside async code use `h::invalidate_async(uri)` and
/// `h::clear_async()`, which do not block the executor for a round trip to a remote store.
///
/// The handler stays an axum handler: the macro prepends a hidden extractor that looks
/// the page up from the request head (not the body, so a body extractor can stay last;
/// this leaves room for 15 of axum's 16 extractor arguments) and changes the return type
/// to `axum::response::Response` (whatever the body returns must implement
/// `IntoResponse`). The handler's other extractors still run on a hit, before the page
/// is served: a guard (a session, a permission) turns a request away from a stored page
/// as it would from the handler. Every handler gets its own [`PageCache`], created on its
/// first request.
///
/// Options:
///
/// * `ttl = "15m"`: freshness when the response sets no `max-age` (default: 10 minutes).
/// * `stale = "5m"`: serve an expired page for this long while one request re-renders it.
/// * `store = <expr>`: any `Store<PageKey, CachedPage>` (default: a new [`MemoryStore`]).
/// * `key_prefix = "..."`: prefix of every key (default: the handler's module path and
///   name, so that handlers can share one store).
/// * `vary = ["Accept-Language", ..]`: request headers that select a different page.
/// * `query = false`: leave the query string out of the key.
/// * `ignore_query = ["utm_*", "fbclid"]`: leave the query parameters whose names match
///   these glob patterns out of the key (see [`PageCache::ignore_query`]).
/// * `crate = "path"`: where the runtime is, if the dependency was renamed.
#[cfg(feature = "axum")]
#[doc(inline)]
pub use cachemacro::cache_page;

/// Caches a function's results, keyed by its arguments.
///
/// ```
/// use cachemacro_runtime::memoize;
///
/// #[memoize]
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// assert_eq!(fib(90), 2_880_067_194_370_816_120); // instant: each n is computed once
/// ```
///
/// # Options
///
/// All options are checked at compile time; a mistake is a compile error pointing at it.
///
/// | option | meaning |
/// |---|---|
/// | `ttl = "15m"` | time to live: `ms`, `s`, `m`, `h`, `d`, combinable (`"1h30m"`); an integer means seconds |
/// | `tti = "5m"` | time to idle: the entry expires when not read for that long |
/// | `stale = "5m"` | after `ttl`, for this long, callers get the old value at once while one caller recomputes it |
/// | `capacity = 10_000` | bound on entries of the default store; past it the least useful entry is evicted (S3-FIFO with a ghost queue) |
/// | `max_bytes = 64_000_000` | bound on the default store's total weight; entries weigh their shallow size unless `weigher` says otherwise |
/// | `weigher = \|k: &(u32,), v: &String\| v.len() as u32` | the weight of one entry (key is the tuple of owned arguments), for `max_bytes` |
/// | `key = expr` | the key is this expression over the arguments instead of all of them |
/// | `ignore(db, self)` | arguments left out of the key (connections, pools, loggers; `self` to share one cache between instances) |
/// | `name = "books"` | the cache's name in logs (default: module path and function name) |
/// | `cache_err = true` | also store `Err` values (by default only `Ok` values of a `Result` are stored) |
/// | `cache_if = \|v: &R\| ..` | stores a result only when the closure returns `true` |
/// | `store = expr` | the backend, any [`Store`]; evaluated once, on the first call |
/// | `crate = "path"` | the path of this runtime crate, if it was renamed |
///
/// # Keys
///
/// By default the key is the tuple of all arguments (and the receiver of a method), each
/// owned: a by-value argument is cloned, `&str` becomes `String`, `&[T]` becomes `Vec<T>`
/// and `&T` becomes `T`. Parts must be `Clone + Hash + Eq + Send + Sync + 'static`. Keys are
/// compared as values, so `("EC1", 15)` and `("EC11", 5)` never collide.
///
/// ```
/// use cachemacro_runtime::memoize;
///
/// struct Db;
///
/// #[memoize(ttl = "30s", ignore(db))]
/// fn title(db: &Db, id: u64) -> String {
///     format!("book {id}")
/// }
///
/// #[memoize(key = id)]
/// fn render(id: u64, request_id: u128) -> String {
///     format!("page {id} (first rendered for request {request_id})")
/// }
///
/// assert_eq!(title(&Db, 3), "book 3");
/// assert_eq!(render(1, 10), render(1, 11));
/// ```
///
/// # Results, async functions and methods
///
/// For a return type written `Result<T, E>` only `Ok(T)` is stored: errors are returned
/// to the caller and computed again next time. `async fn` works the same way, and the
/// returned future is `Send` whenever the body's is. Methods key on `self` (which must then
/// be `Clone + Hash + Eq`) unless `ignore(self)` is given.
///
/// ```
/// use cachemacro_runtime::memoize;
///
/// #[derive(Clone, Hash, PartialEq, Eq)]
/// struct Catalogue { shelf: u32 }
///
/// impl Catalogue {
///     #[memoize(ttl = "1m")]
///     fn count(&self, genre: &str) -> Result<usize, String> {
///         Ok(genre.len() * self.shelf as usize)
///     }
/// }
///
/// # async fn run() {
/// #[memoize(ttl = "15m")]
/// async fn page(id: u64) -> String {
///     format!("<h1>book {id}</h1>")
/// }
///
/// assert_eq!(page(312).await, "<h1>book 312</h1>");
/// # }
/// let shelf = Catalogue { shelf: 2 };
/// assert_eq!(shelf.count("poetry"), Ok(12));
/// assert_eq!(Catalogue::count_stats().misses, 1);
/// ```
///
/// # Single-flight
///
/// When several threads or tasks miss the same key at once, one runs the body and the
/// others wait for its value. Different keys never wait on each other. If the body
/// panics, or an async caller is cancelled, the next caller computes.
///
/// # Companions
///
/// A free function `f` gets a module `f` with `f::invalidate(<key arguments>) -> bool`,
/// `f::clear()` and `f::stats() -> CacheStats`. A method `m` gets the associated functions
/// `m_invalidate`, `m_clear` and `m_stats` instead (a module cannot live in an `impl`).
/// Inside async code use the async forms, `f::invalidate_async(<key arguments>)` and
/// `f::clear_async()` (`m_invalidate_async`, `m_clear_async`), which do not block the
/// executor for a round trip to a remote store.
///
/// ```
/// use cachemacro_runtime::memoize;
///
/// #[memoize(ttl = "15m")]
/// async fn page(id: u64) -> String {
///     format!("<h1>book {id}</h1>")
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// page(312).await;
/// assert!(page::invalidate_async(312).await);
/// page::clear_async().await;
/// # });
/// ```
///
/// # Limits
///
/// * The companion module imports its parent module's items with `use super::*`, so the
///   argument types of a memoized free function must be nameable there: define memoized
///   functions at module level, not inside another function's body, when their
///   arguments use types local to that body.
/// * An associated function without `self` or `Self` in its signature is treated as a
///   free function; memoize such functions outside the `impl` block.
/// * Methods in trait implementations cannot be memoized directly (the companions would
///   not be members of the trait): memoize a helper function and call it.
#[doc(inline)]
pub use cachemacro::memoize;
