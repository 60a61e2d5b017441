//! [`PageStore`]: a [`Store`] of pages without its type parameters, so that
//! [`PageCache`](super::PageCache) is one type whatever store it holds (the
//! `#[cache_page]` statics and the layer must be nameable).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::entry::CachedPage;
use super::key::{BaseKeyRef, PageKey};
use crate::store::{Store, StoreError, StoreStats};

pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The page cache serves from async handlers: every call that does I/O is async, and
/// the blocking `remove` and `clear` remain for the sync `invalidate` and `clear`.
pub(super) trait PageStore: Send + Sync {
    /// The entry under `key` if the store can answer at once, in process (a
    /// [`MemoryStore`](crate::MemoryStore)): the synchronous hit then builds no future.
    /// `None` says nothing (the store may be remote); the request goes through
    /// [`get`](PageStore::get) on the asynchronous path.
    fn probe(&self, key: &PageKey) -> Option<CachedPage>;
    /// [`probe`](PageStore::probe) with a base key borrowed from the request.
    fn probe_base(&self, key: &BaseKeyRef<'_>) -> Option<CachedPage>;
    fn get<'a>(&'a self, key: &'a PageKey)
        -> BoxFuture<'a, Result<Option<CachedPage>, StoreError>>;
    fn insert(
        &self,
        key: PageKey,
        page: CachedPage,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn remove(&self, key: &PageKey) -> Result<bool, StoreError>;
    fn remove_async<'a>(&'a self, key: &'a PageKey) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn clear(&self) -> Result<(), StoreError>;
    fn clear_async(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    fn stats(&self) -> StoreStats;
}

impl<S: Store<PageKey, CachedPage>> PageStore for S {
    fn probe(&self, key: &PageKey) -> Option<CachedPage> {
        self.get_borrowed(key)
    }

    fn probe_base(&self, key: &BaseKeyRef<'_>) -> Option<CachedPage> {
        self.get_borrowed(key)
    }

    fn get<'a>(
        &'a self,
        key: &'a PageKey,
    ) -> BoxFuture<'a, Result<Option<CachedPage>, StoreError>> {
        Box::pin(self.get_async(key))
    }

    fn insert(
        &self,
        key: PageKey,
        page: CachedPage,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.insert_async(key, page, Some(ttl)))
    }

    fn remove(&self, key: &PageKey) -> Result<bool, StoreError> {
        Store::remove(self, key)
    }

    fn remove_async<'a>(&'a self, key: &'a PageKey) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(Store::remove_async(self, key))
    }

    fn clear(&self) -> Result<(), StoreError> {
        Store::clear(self)
    }

    fn clear_async(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::clear_async(self))
    }

    fn stats(&self) -> StoreStats {
        Store::stats(self)
    }
}
