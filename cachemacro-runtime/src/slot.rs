//! The static home of a memoized function's cache.
//!
//! The generated code declares one `static CacheSlot` per memoized function and asks it
//! for a cache of a type the compiler infers from the call (`Memoized<K, V, S>`). Keeping
//! the type out of the `static` lets the key and value types mention `Self`, inferred
//! `key = ...` expressions and user-chosen stores, none of which a `static`'s type could
//! name. A method of a generic `impl` gets one cache per instantiation: each type gets its
//! own entry. The fast path is one atomic load and one `TypeId` comparison.

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};

use crate::stats::CacheStats;

/// What the companion functions (`f::clear()`, `f::stats()`, `f::invalidate(..)` and
/// their async forms) need from a cache without knowing its types.
pub trait ErasedCache: Any + Send + Sync {
    /// Removes every entry.
    fn clear(&self);
    /// Removes every entry through the store's async clear.
    fn clear_async(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// A snapshot of the counters.
    fn stats(&self) -> CacheStats;
    /// Removes the entry of `key` if `key` is of this cache's key type.
    fn invalidate(&self, key: &dyn Any) -> bool;
    /// The removal of `key`'s entry through the store's async removal, if `key` is of
    /// this cache's key type; it resolves to whether there was one.
    fn invalidate_async<'a>(
        &'a self,
        key: &'a dyn Any,
    ) -> Option<Pin<Box<dyn Future<Output = bool> + Send + 'a>>>;
    /// Upcast for downcasting to the concrete cache.
    fn as_any(&self) -> &dyn Any;
}

#[derive(Clone, Copy)]
struct SlotEntry {
    type_id: TypeId,
    cache: &'static dyn ErasedCache,
    /// The same cache, for a downcast without going through `ErasedCache::as_any`.
    any: &'static (dyn Any + Send + Sync),
}

/// A lazily initialised, type-keyed home for the caches of one memoized function.
pub struct CacheSlot {
    first: OnceLock<SlotEntry>,
    others: Mutex<Vec<SlotEntry>>,
}

impl CacheSlot {
    /// An empty slot, usable in a `static`.
    pub const fn new() -> Self {
        CacheSlot {
            first: OnceLock::new(),
            others: Mutex::new(Vec::new()),
        }
    }

    /// The cache of type `T`, created by `init` on first use.
    ///
    /// Caches live for the rest of the program, like the `static` they belong to.
    #[inline]
    pub fn get_or_init<T: ErasedCache>(&self, init: impl FnOnce() -> T) -> &'static T {
        // The hit path of every memoized call: one load and one type check, inlined;
        // creation and the generic-impl case stay out of line.
        if let Some(cache) = self.first.get().and_then(|first| first.any.downcast_ref()) {
            return cache;
        }
        self.get_or_init_slow(init)
    }

    #[cold]
    #[inline(never)]
    fn get_or_init_slow<T: ErasedCache>(&self, init: impl FnOnce() -> T) -> &'static T {
        let wanted = TypeId::of::<T>();
        let mut init = Some(init);
        let first = self.first.get_or_init(|| {
            let make = init.take().expect("init is called once");
            leak(make())
        });
        if first.type_id == wanted {
            return downcast(first.cache);
        }
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = others.iter().find(|entry| entry.type_id == wanted) {
            return downcast(entry.cache);
        }
        let make = init.take().expect("init is called once");
        let entry = leak(make());
        others.push(entry);
        downcast(entry.cache)
    }

    /// Every cache created so far.
    pub fn caches(&self) -> Vec<&'static dyn ErasedCache> {
        let mut all: Vec<_> = self
            .first
            .get()
            .map(|entry| entry.cache)
            .into_iter()
            .collect();
        let others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(others.iter().map(|entry| entry.cache));
        all
    }

    /// Removes every entry of every cache in the slot.
    ///
    /// ```
    /// use cachemacro_runtime::__private::{CacheSlot, Memoized, MemoryStore};
    ///
    /// static SLOT: CacheSlot = CacheSlot::new();
    /// let cache = SLOT.get_or_init(|| Memoized::new("squares", MemoryStore::<u32, u32>::new(), None));
    /// # let _ = cache;
    /// SLOT.clear();
    /// assert_eq!(SLOT.stats().entries, 0);
    /// ```
    pub fn clear(&self) {
        self.caches().into_iter().for_each(ErasedCache::clear);
    }

    /// [`clear`](Self::clear) without blocking the executor on a remote store.
    ///
    /// ```
    /// use cachemacro_runtime::__private::{CacheSlot, Memoized, MemoryStore};
    ///
    /// static SLOT: CacheSlot = CacheSlot::new();
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = SLOT.get_or_init(|| Memoized::new("squares", MemoryStore::<u32, u32>::new(), None));
    /// # let _ = cache;
    /// tokio::spawn(async { SLOT.clear_async().await }).await.unwrap();
    /// assert_eq!(SLOT.stats().entries, 0);
    /// # });
    /// ```
    pub async fn clear_async(&self) {
        for cache in self.caches() {
            cache.clear_async().await;
        }
    }

    /// The counters of all caches in the slot, summed.
    pub fn stats(&self) -> CacheStats {
        self.caches()
            .into_iter()
            .map(ErasedCache::stats)
            .fold(CacheStats::default(), CacheStats::merge)
    }

    /// Removes `key` from every cache whose keys are of its type (a generic memoized
    /// function has one cache per instantiation, possibly several with the same key
    /// type); returns whether any had it.
    ///
    /// ```
    /// use cachemacro_runtime::__private::{CacheSlot, Memoized, MemoryStore};
    ///
    /// static SLOT: CacheSlot = CacheSlot::new();
    /// let cache = SLOT.get_or_init(|| Memoized::new("squares", MemoryStore::<u32, u32>::new(), None));
    /// # let _ = cache;
    /// assert!(!SLOT.invalidate(&7u32));
    /// ```
    pub fn invalidate<K: Any>(&self, key: &K) -> bool {
        // Not `any`: it would stop at the first cache that had the key.
        let mut found = false;
        for cache in self.caches() {
            found |= cache.invalidate(key);
        }
        found
    }

    /// [`invalidate`](Self::invalidate) without blocking the executor on a remote store.
    ///
    /// ```
    /// use cachemacro_runtime::__private::{CacheSlot, Memoized, MemoryStore};
    ///
    /// static SLOT: CacheSlot = CacheSlot::new();
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = SLOT.get_or_init(|| Memoized::new("squares", MemoryStore::<u32, u32>::new(), None));
    /// # let _ = cache;
    /// let removed = tokio::spawn(async { SLOT.invalidate_async(&7u32).await });
    /// assert!(!removed.await.unwrap());
    /// # });
    /// ```
    pub async fn invalidate_async<K: Any + Sync>(&self, key: &K) -> bool {
        let mut found = false;
        for cache in self.caches() {
            let removal = cache.invalidate_async(key);
            if let Some(removal) = removal {
                found |= removal.await;
            }
        }
        found
    }
}

impl Default for CacheSlot {
    fn default() -> Self {
        Self::new()
    }
}

fn leak<T: ErasedCache>(cache: T) -> SlotEntry {
    let cache: &'static T = Box::leak(Box::new(cache));
    SlotEntry {
        type_id: TypeId::of::<T>(),
        cache,
        any: cache,
    }
}

fn downcast<T: ErasedCache>(cache: &'static dyn ErasedCache) -> &'static T {
    cache
        .as_any()
        .downcast_ref()
        .expect("slot entries are stored under their own TypeId")
}
