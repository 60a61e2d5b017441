//! The low-level cache API of Django and Flask-Caching, for code that uses a store
//! directly rather than through `#[memoize]`: conditional and batched writes, atomic
//! counters and compare-and-set.

use std::any::Any;
use std::fmt;
use std::future::{ready, Future};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// Proof of the value a [`CacheApi::gets`] saw, for a later [`CacheApi::cas`].
///
/// What it holds depends on the store (memcached's CAS id, the bytes Redis held);
/// treat it as opaque.
///
/// ```
/// use cachemacro_runtime::{CacheApi, MemoryStore};
///
/// // The hit counter, bumped by read-modify-write that loses no update.
/// let store: MemoryStore<&str, i64> = MemoryStore::new();
/// loop {
///     let (seen, token) = store.gets(&"views")?.unwrap_or((0, store.absent_token()));
///     if store.cas("views", seen + 1, &token, None)? {
///         break;
///     }
/// }
/// assert_eq!(store.gets(&"views")?.map(|(views, _)| views), Some(1));
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasToken(pub(crate) CasTokenRepr);

impl CasToken {
    /// The error for a token that another kind of store issued.
    pub(crate) fn foreign() -> StoreError {
        StoreError::Other("a CAS token from another kind of store".into())
    }
}

#[derive(Clone)]
pub(crate) enum CasTokenRepr {
    /// Memcached's CAS unique.
    #[cfg_attr(not(feature = "memcached"), allow(dead_code))]
    Version(u64),
    /// The exact bytes the key held when it was read (empty: it held nothing).
    Bytes(Vec<u8>),
    /// The value an in-process store held when it was read, compared by `PartialEq`.
    Value(Arc<dyn Any + Send + Sync>),
}

impl PartialEq for CasTokenRepr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CasTokenRepr::Version(a), CasTokenRepr::Version(b)) => a == b,
            (CasTokenRepr::Bytes(a), CasTokenRepr::Bytes(b)) => a == b,
            (CasTokenRepr::Value(a), CasTokenRepr::Value(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for CasTokenRepr {}

impl fmt::Debug for CasTokenRepr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CasTokenRepr::Version(unique) => write!(formatter, "Version({unique})"),
            CasTokenRepr::Bytes(bytes) => write!(formatter, "Bytes({} bytes)", bytes.len()),
            CasTokenRepr::Value(_) => formatter.write_str("Value(..)"),
        }
    }
}

/// Django's and Flask-Caching's low-level cache API, on top of [`Store`].
///
/// Every method is one server round trip (batched ones: one per server), and the ones
/// that must be atomic are atomic on the server, not emulated with a read followed by a
/// write. A page's hit counter kept with `get` and `set` loses increments: two requests
/// read 10 and both write 11. That race is exactly what [`incr`](CacheApi::incr) and the
/// [`gets`](CacheApi::gets)/[`cas`](CacheApi::cas) retry loop prevent:
///
/// ```
/// use cachemacro_runtime::{CacheApi, MemoryStore, Store};
///
/// // The same calls work on `RedisStore` and `MemcachedStore`, atomically on the server.
/// let store: MemoryStore<&str, i64> = MemoryStore::new();
/// let hits = store.incr(&"hit_count", 1)?;
/// assert_eq!(hits, 1);
///
/// // Compare-and-set for updates a single counter cannot express.
/// loop {
///     let (seen, token) = match store.gets(&"high_score")? {
///         Some(found) => found,
///         None => (0, store.absent_token()),
///     };
///     if store.cas("high_score", seen.max(hits * 10), &token, None)? {
///         break;
///     }
/// }
/// assert_eq!(store.get(&"high_score")?, Some(10));
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
pub trait CacheApi<K, V>: Store<K, V> {
    /// Stores `value` only if `key` holds nothing; returns whether it did. Atomic.
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError>;

    /// Sets the time to live of an existing entry (`None`: never expires); returns
    /// whether the entry existed.
    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError>;

    /// Adds `delta` to the integer under `key` and returns the new value. A missing
    /// counter starts at 0. Atomic: concurrent increments are never lost.
    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError>;

    /// [`incr`](CacheApi::incr) without creating: a missing (or expired) counter stays
    /// missing and the answer is `None` — Django's `incr`, which raises for a missing
    /// key, where `incr` is the create-on-missing form. Atomic.
    ///
    /// ```
    /// use cachemacro_runtime::{CacheApi, MemoryStore};
    ///
    /// let store: MemoryStore<&str, i64> = MemoryStore::new();
    /// assert_eq!(store.incr_existing(&"hits", 1)?, None);
    /// store.incr(&"hits", 1)?;
    /// assert_eq!(store.incr_existing(&"hits", 1)?, Some(2));
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError>;

    /// Subtracts `delta`; see [`incr`](CacheApi::incr).
    fn decr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        self.incr(key, delta.checked_neg().ok_or(StoreError::Overflow)?)
    }

    /// The value under `key` with a token for [`cas`](CacheApi::cas).
    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError>;

    /// A token that [`cas`](CacheApi::cas) accepts only while `key` holds nothing.
    fn absent_token(&self) -> CasToken {
        CasToken(CasTokenRepr::Bytes(Vec::new()))
    }

    /// Stores `value` only if `key` still holds what [`gets`](CacheApi::gets) saw when it
    /// returned `token`; returns whether it did. Atomic.
    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// The value under `key`, or `default()` stored with [`add`](CacheApi::add) if there
    /// is none. When another caller adds first, its value is returned, so everyone sees
    /// one value.
    fn get_or_set(
        &self,
        key: K,
        default: impl FnOnce() -> V,
        ttl: Option<Duration>,
    ) -> Result<V, StoreError>
    where
        K: Clone,
        V: Clone,
    {
        if let Some(found) = self.get(&key)? {
            return Ok(found);
        }
        let value = default();
        if self.add(key.clone(), value.clone(), ttl)? {
            return Ok(value);
        }
        Ok(self.get(&key)?.unwrap_or(value))
    }

    /// The values under `keys`, in order. Stores batch this into one round trip per
    /// server.
    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Stores every entry with the same time to live.
    fn set_many(&self, entries: Vec<(K, V)>, ttl: Option<Duration>) -> Result<(), StoreError> {
        entries
            .into_iter()
            .try_for_each(|(key, value)| self.insert(key, value, ttl))
    }

    /// Django's `incr_version`: moves the entry under `key` from this store's version to
    /// the version `delta` away, and returns that version; `None` when the key held
    /// nothing. A store whose builder was given `.version(n)` with the returned number
    /// reads the entry there; this store no longer sees it.
    ///
    /// As in Django this is a read, a write and a delete, not one atomic step: a write
    /// to the key in between may be lost. Stores that keep no versions (the in-process
    /// [`MemoryStore`](crate::MemoryStore), whose keys are your own values) answer
    /// [`StoreError::Unsupported`].
    ///
    /// ```
    /// use cachemacro_runtime::{CacheApi, MemoryStore, StoreError};
    ///
    /// let store: MemoryStore<&str, u32> = MemoryStore::new();
    /// assert!(matches!(store.incr_version(&"k", 1), Err(StoreError::Unsupported(_))));
    /// ```
    fn incr_version(&self, key: &K, delta: i64) -> Result<Option<u64>, StoreError> {
        let _ = (key, delta);
        Err(StoreError::Unsupported("versions"))
    }

    /// Removes every key; returns how many existed.
    fn delete_many(&self, keys: &[K]) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.remove(key)?);
        }
        Ok(removed)
    }

    /// Asynchronous [`add`](CacheApi::add). The defaults of the `*_async` methods call
    /// the synchronous ones, which is right for in-process stores; stores that do I/O
    /// override them with real asynchronous calls.
    fn add_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ready(self.add(key, value, ttl))
    }

    /// Asynchronous [`touch`](CacheApi::touch).
    fn touch_async(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ready(self.touch(key, ttl))
    }

    /// Asynchronous [`incr`](CacheApi::incr).
    ///
    /// ```
    /// use cachemacro_runtime::{CacheApi, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachemacro_runtime::StoreError> {
    /// let store: MemoryStore<&str, i64> = MemoryStore::new();
    /// assert_eq!(store.incr_async(&"hit_count", 2).await?, 2);
    /// assert_eq!(store.decr_async(&"hit_count", 1).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    fn incr_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        ready(self.incr(key, delta))
    }

    /// Asynchronous [`decr`](CacheApi::decr).
    fn decr_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send
    where
        K: Sync,
    {
        let negated = delta.checked_neg().ok_or(StoreError::Overflow);
        async move { self.incr_async(key, negated?).await }
    }

    /// Asynchronous [`incr_existing`](CacheApi::incr_existing).
    fn incr_existing_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send {
        ready(self.incr_existing(key, delta))
    }

    /// Asynchronous [`get_or_set`](CacheApi::get_or_set).
    fn get_or_set_async(
        &self,
        key: K,
        default: impl FnOnce() -> V + Send,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<V, StoreError>> + Send
    where
        K: Clone + Send + Sync,
        V: Clone + Send,
    {
        async move {
            if let Some(found) = self.get_async(&key).await? {
                return Ok(found);
            }
            let value = default();
            if self.add_async(key.clone(), value.clone(), ttl).await? {
                return Ok(value);
            }
            Ok(self.get_async(&key).await?.unwrap_or(value))
        }
    }

    /// Asynchronous [`incr_version`](CacheApi::incr_version).
    fn incr_version_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        ready(self.incr_version(key, delta))
    }

    /// Asynchronous [`gets`](CacheApi::gets).
    fn gets_async(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Option<(V, CasToken)>, StoreError>> + Send
    where
        V: Send,
    {
        ready(self.gets(key))
    }

    /// Asynchronous [`cas`](CacheApi::cas).
    fn cas_async(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ready(self.cas(key, value, token, ttl))
    }

    /// Asynchronous [`get_many`](CacheApi::get_many).
    fn get_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<Option<V>>, StoreError>> + Send
    where
        V: Send,
    {
        ready(self.get_many(keys))
    }

    /// Asynchronous [`set_many`](CacheApi::set_many).
    fn set_many_async(
        &self,
        entries: Vec<(K, V)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.set_many(entries, ttl))
    }

    /// Asynchronous [`delete_many`](CacheApi::delete_many).
    fn delete_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        ready(self.delete_many(keys))
    }
}
