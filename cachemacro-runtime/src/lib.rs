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
//!   `f::clear()` and `f::stats()`.
//! * The cache lives in a [`Store`]: the embedded [`MemoryStore`] by default, or any
//!   backend given by `store = ..`. A store fault never fails the function: the value is
//!   computed, the fault counted in [`CacheStats::errors`] and logged with `tracing`.
//!
//! See the [`memoize`] attribute for every option.

mod memoized;
mod single_flight;
mod slot;
mod stats;
pub mod store;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use stats::CacheStats;
pub use store::{MemoryStore, MemoryStoreBuilder, Store, StoreError, StoreStats};

pub use cachemacro::memoize;
