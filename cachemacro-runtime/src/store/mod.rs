//! The [`Store`] trait every cache backend implements, and the backends shipped with the
//! runtime.
//!
//! A store is a map from keys to values with optional per-entry expiry. The memoization
//! layer ([`crate::memoize`]) only ever calls the methods of this trait, so any backend —
//! the embedded [`MemoryStore`], a remote server, a file — plugs in through
//! `#[memoize(store = ...)]`.

pub(crate) mod api;
#[cfg(feature = "disk")]
mod disk;
#[cfg(feature = "serde")]
pub(crate) mod encoded;
#[cfg(feature = "memcached")]
pub(crate) mod memcached;
mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "postgres")]
pub(crate) mod sql;

#[cfg(feature = "disk")]
pub use self::disk::{Disk, DiskOptions, DiskStore, DiskStoreBuilder};
#[cfg(feature = "memcached")]
pub use self::memcached::{Memcached, MemcachedOptions, MemcachedStore, MemcachedStoreBuilder};
#[cfg(feature = "redis")]
pub use self::redis::{Redis, RedisOptions, RedisStore, RedisStoreBuilder};
#[cfg(feature = "postgres")]
pub use self::sql::{Postgres, SqlOptions, SqlStore, SqlStoreBuilder};
pub use api::{CacheApi, CasToken};
#[cfg(feature = "serde")]
pub use encoded::backend::{namespace_of, split_key, Backend, Op, Reply};
#[cfg(feature = "serde")]
pub use encoded::bridge::{on_blocking_pool, OwnRuntime};
#[cfg(feature = "serde")]
pub use encoded::builder::{ServerOptions, StoreBuilder};
#[cfg(feature = "serde")]
pub use encoded::codec::{Codec, MessagePack};
#[cfg(feature = "serde")]
pub use encoded::EncodedStore;
pub use memory::{MemoryStore, MemoryStoreBuilder, RemovalCause};

use std::future::{ready, Future};

use crate::KeyRef;
use std::time::Duration;

/// Why a store could not serve a request.
///
/// The memoization layer never hands this error to the memoized function's caller: it
/// counts it in [`CacheStats::errors`](crate::CacheStats::errors), logs it through
/// `tracing` and computes the value as if the cache had missed.
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::StoreError;
///
/// // A store of your own says what went wrong; the memoization layer counts it and computes.
/// let timed_out = StoreError::Timeout(Duration::from_millis(100));
/// assert_eq!(timed_out.to_string(), "cache backend timed out after 100ms");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or answered with an error.
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time.
    #[error("cache backend timed out after {0:?}")]
    Timeout(Duration),
    /// Stored bytes could not be turned back into a value (type changed, corrupt data).
    #[error("cached value could not be decoded: {0}")]
    Corrupt(String),
    /// A counter's new value would not fit a signed 64-bit integer; the stored counter is
    /// left as it was.
    #[error("the counter would overflow a signed 64-bit integer")]
    Overflow,
    /// The store does not offer this operation (the name says which).
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// Any other backend-specific failure.
    #[error(transparent)]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// Counters a store keeps about itself; merged into [`CacheStats`](crate::CacheStats).
///
/// ```
/// use cachemacro_runtime::StoreStats;
///
/// let stats = StoreStats::new(3, 1, 0);
/// assert_eq!((stats.entries, stats.evictions, stats.expirations), (3, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Entries currently held (expired entries not yet purged may be included).
    pub entries: u64,
    /// Entries removed to respect the store's capacity.
    pub evictions: u64,
    /// Entries removed because their time to live or time to idle ran out.
    pub expirations: u64,
}

impl StoreStats {
    /// Counters for a store of your own (the struct is `#[non_exhaustive]`, so other
    /// crates build it here).
    pub fn new(entries: u64, evictions: u64, expirations: u64) -> Self {
        StoreStats {
            entries,
            evictions,
            expirations,
        }
    }
}

/// A cache backend: a concurrent map from `K` to `V` with optional per-entry expiry.
///
/// Implement the four synchronous methods; the `*_async` methods default to calling them,
/// which is right for in-process stores. A backend that does I/O overrides the async
/// methods with real asynchronous calls and implements the sync ones by blocking, so one
/// store serves both sync and `async` memoized functions.
///
/// Stores are shared between threads, so methods take `&self`. A store must never panic on
/// bad data: a value it cannot read back is reported as [`StoreError::Corrupt`] or simply
/// as a miss.
///
/// # Example: a store of your own
///
/// ```
/// use std::collections::HashMap;
/// use std::hash::Hash;
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use cachemacro_runtime::{memoize, Store, StoreError};
///
/// /// The simplest possible store: a mutex around a HashMap, with no expiry.
/// #[derive(Default)]
/// pub struct MutexStore<K, V>(Mutex<HashMap<K, V>>);
///
/// impl<K, V> Store<K, V> for MutexStore<K, V>
/// where
///     K: Hash + Eq + Send,
///     V: Clone + Send,
/// {
///     fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     fn insert(&self, key: K, value: V, _ttl: Option<Duration>) -> Result<(), StoreError> {
///         self.0.lock().unwrap().insert(key, value);
///         Ok(())
///     }
///     fn remove(&self, key: &K) -> Result<bool, StoreError> {
///         Ok(self.0.lock().unwrap().remove(key).is_some())
///     }
///     fn clear(&self) -> Result<(), StoreError> {
///         self.0.lock().unwrap().clear();
///         Ok(())
///     }
/// }
///
/// #[memoize(store = MutexStore::default())]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// assert_eq!(square(12), 144);
/// assert_eq!(square(12), 144);
/// assert_eq!(square::stats().hits, 1);
/// ```
pub trait Store<K, V>: Send + Sync {
    /// Returns the value stored under `key`, or `None` if it is absent or expired.
    fn get(&self, key: &K) -> Result<Option<V>, StoreError>;

    /// A lookup from a borrowed key, without building the owned one: the hit path of
    /// `#[memoize]` calls this first. In-process stores that can probe with a borrowed
    /// key (like [`MemoryStore`]) return the value when present; the default returns
    /// `None`, after which [`get`](Store::get) runs with the owned key as usual. Never
    /// an error: a store that would have to fail here returns `None` and reports the
    /// fault from `get`.
    fn get_borrowed<Q>(&self, key: &Q) -> Option<V>
    where
        Q: KeyRef<Key = K> + ?Sized,
    {
        let _ = key;
        None
    }

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// `ttl` is this entry's time to live; `None` means the store's own default (which may
    /// be "never expires").
    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Removes the entry under `key`; returns whether there was one.
    fn remove(&self, key: &K) -> Result<bool, StoreError>;

    /// Removes every entry of this store.
    fn clear(&self) -> Result<(), StoreError>;

    /// Called once by `#[memoize]` with the cache's name (`name = ..`, or the function's
    /// module path and name) before the store's first use. A store that several functions
    /// or processes share, such as a remote server, keeps their keys apart with it;
    /// in-process stores, which belong to one function, ignore it.
    fn with_namespace(self, namespace: &'static str) -> Self
    where
        Self: Sized,
    {
        let _ = namespace;
        self
    }

    /// The store's own counters. Backends that cannot count return the default (zeros).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Asynchronous [`get`](Store::get). The default calls the synchronous method.
    fn get_async(&self, key: &K) -> impl Future<Output = Result<Option<V>, StoreError>> + Send
    where
        V: Send,
    {
        ready(self.get(key))
    }

    /// Asynchronous [`insert`](Store::insert). The default calls the synchronous method.
    fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.insert(key, value, ttl))
    }

    /// Asynchronous [`remove`](Store::remove). The default calls the synchronous method.
    fn remove_async(&self, key: &K) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ready(self.remove(key))
    }

    /// Asynchronous [`clear`](Store::clear). The default calls the synchronous method.
    fn clear_async(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.clear())
    }
}
