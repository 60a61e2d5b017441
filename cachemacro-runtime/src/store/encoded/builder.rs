//! [`StoreBuilder`]: the settings of every encoded store, with one name per concept.

use std::time::Duration;

use super::backend::Backend;
use super::breaker::Breakers;
use super::codec::{Codec, MessagePack};
use super::key_space::KeyOptions;
use super::EncodedStore;
use crate::StoreError;

/// Settings of an [`EncodedStore`]: what every store takes (`prefix`, `namespace`,
/// `version`, `codec`, `ttl`, `retry_after`), what stores on a server take
/// (`connect_timeout`, `operation_timeout`, `pool_size`), and the backend's own options
/// `O`. `RedisStore::builder(..)`, `MemcachedStore::builder(..)`, `DiskStore::builder(..)`
/// and `SqlStore::builder(..)` return one; [`StoreBuilder::over`] wraps a backend of
/// your own.
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::backend::{Backend, Op, Reply};
/// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
///
/// #[derive(Clone)]
/// struct Nowhere;
///
/// impl Backend for Nowhere {
///     fn execute(&self, op: Op) -> Result<Reply, StoreError> {
///         Err(StoreError::Unsupported(op.name()))
///     }
/// }
///
/// let store: EncodedStore<Nowhere> = StoreBuilder::over(Nowhere)
///     .prefix("bookshop")
///     .namespace("pages")
///     .version(2)
///     .ttl(Duration::from_secs(900))
///     .retry_after(Duration::from_secs(2))
///     .build()?;
/// # let _ = store;
/// # Ok::<(), StoreError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct StoreBuilder<O, C = MessagePack> {
    pub(crate) options: O,
    pub(crate) codec: C,
    pub(crate) keys: KeyOptions,
    pub(crate) ttl: Option<Duration>,
    pub(crate) retry_after: Duration,
    pub(crate) network: NetworkSettings,
}

/// The settings of a store whose backend talks to servers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetworkSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) pool_size: usize,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            connect_timeout: Duration::from_millis(50),
            operation_timeout: Duration::from_millis(100),
            pool_size: 4,
        }
    }
}

/// Backend options whose stores talk to servers, and so take `connect_timeout`,
/// `operation_timeout` and `pool_size`. Sealed: implemented by the crate's backends.
///
/// ```
/// use cachemacro_runtime::backend::ServerOptions;
///
/// // A function for every store that talks to servers.
/// fn tuned<O: ServerOptions>(
///     builder: cachemacro_runtime::StoreBuilder<O>,
/// ) -> cachemacro_runtime::StoreBuilder<O> {
///     builder.pool_size(8)
/// }
/// ```
pub trait ServerOptions: sealed::Sealed {}

pub(crate) mod sealed {
    pub trait Sealed {}
}

impl<O> StoreBuilder<O, MessagePack> {
    /// Settings with the defaults: prefix `cachemacro`, the memoized function's name as
    /// namespace, version 1, [`MessagePack`] values, no default TTL, retry after 1 s.
    pub(crate) fn with_options(options: O, network: NetworkSettings) -> Self {
        StoreBuilder {
            options,
            codec: MessagePack,
            keys: KeyOptions::default(),
            ttl: None,
            retry_after: Duration::from_secs(1),
            network,
        }
    }
}

impl<O, C: Codec> StoreBuilder<O, C> {
    /// The first part of every key (default `cachemacro`), shared by all caches of one
    /// application; two applications on one server keep apart by it.
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// // `bookshop:<namespace>:1:<key>`; every store's builder takes it.
    /// let store: EncodedStore<Nowhere> = StoreBuilder::over(Nowhere).prefix("bookshop").build()?;
    /// # let _ = store;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys.prefix = prefix.into();
        self
    }

    /// The second part of every key. Defaults to the memoized function's cache name, so
    /// set it only to share entries between differently named functions (or, for a page
    /// cache, between handlers).
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// // Two functions, or two handlers, reading one set of entries.
    /// let shared = StoreBuilder::over(Nowhere).namespace("stores-near").build()?;
    /// # let _: EncodedStore<Nowhere> = shared;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.keys.namespace = Some(namespace.into());
        self
    }

    /// The third part of every key (default 1), as Django's `VERSION`: deploying with a
    /// new version leaves the entries of the old one out of sight (they expire by
    /// themselves), and a store at version `n + 1` reads what
    /// [`incr_version`](crate::CacheApi::incr_version) moved there.
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// // After a deploy that changed what the cached values mean.
    /// let store = StoreBuilder::over(Nowhere).version(2).build()?;
    /// # let _: EncodedStore<Nowhere> = store;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn version(mut self, version: u64) -> Self {
        self.keys.version = version;
        self
    }

    /// The time to live of entries written without one (default: none, they stay until
    /// evicted or removed).
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    /// use std::time::Duration;
    ///
    /// let store = StoreBuilder::over(Nowhere).ttl(Duration::from_secs(15 * 60)).build()?;
    /// # let _: EncodedStore<Nowhere> = store;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// After a failed or timed-out operation on a server, how long callers skip it
    /// (answering "unavailable" at once, so that they compute) before one of them probes
    /// it again (default 1 s).
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    /// use std::time::Duration;
    ///
    /// // A server that failed is left alone for 5 s: calls compute meanwhile, without waiting.
    /// let store = StoreBuilder::over(Nowhere).retry_after(Duration::from_secs(5)).build()?;
    /// # let _: EncodedStore<Nowhere> = store;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// How values are written (default [`MessagePack`]); keys are always MessagePack.
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, MessagePack, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// // Any store's builder takes it: `RedisStore::builder(..).codec(..)` alike.
    /// let store: EncodedStore<Nowhere, MessagePack> =
    ///     StoreBuilder::over(Nowhere).codec(MessagePack).build()?;
    /// # let _ = store;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn codec<D: Codec>(self, codec: D) -> StoreBuilder<O, D> {
        StoreBuilder {
            options: self.options,
            codec,
            keys: self.keys,
            ttl: self.ttl,
            retry_after: self.retry_after,
            network: self.network,
        }
    }

    /// The store over `backend`, with these settings.
    pub(crate) fn finish<B: Backend>(self, backend: B) -> EncodedStore<B, C> {
        let breakers = Breakers::new(backend.servers(), self.retry_after);
        EncodedStore::from_parts(
            backend,
            self.codec,
            self.keys.into_key_space(),
            self.ttl,
            breakers,
        )
    }
}

impl<O: ServerOptions, C: Codec> StoreBuilder<O, C> {
    /// How long to wait for a connection: a new one to the server, or a free one from the
    /// store's pool.
    ///
    /// ```
    /// # #[cfg(feature = "memcached")] {
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["127.0.0.1:11211"])
    ///     .connect_timeout(Duration::from_millis(20))
    ///     .build();
    /// assert!(store.is_ok()); // nothing is connected until the first call
    /// # }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.network.connect_timeout = timeout;
        self
    }

    /// How long to wait for one operation's answer once connected.
    ///
    /// ```
    /// # #[cfg(feature = "memcached")] {
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["127.0.0.1:11211"])
    ///     .operation_timeout(Duration::from_millis(50))
    ///     .build();
    /// assert!(store.is_ok()); // nothing is connected until the first call
    /// # }
    /// ```
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.network.operation_timeout = timeout;
        self
    }

    /// How many connections a server's pool holds at most (default 4), opened as
    /// concurrent calls need them.
    ///
    /// ```
    /// # #[cfg(feature = "memcached")] {
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["127.0.0.1:11211"])
    ///     .pool_size(16)
    ///     .build();
    /// assert!(store.is_ok()); // nothing is connected until the first call
    /// # }
    /// ```
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.network.pool_size = connections.max(1);
        self
    }
}

impl<B: Backend> StoreBuilder<B, MessagePack> {
    /// Settings for a store over `backend`, a [`Backend`] of your own.
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// let store: EncodedStore<Nowhere> = StoreBuilder::over(Nowhere).prefix("mine").build()?;
    /// use cachemacro_runtime::Store;
    /// let read: Result<Option<String>, _> = store.get(&"key".to_owned());
    /// assert!(read.is_err()); // Nowhere supports nothing
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn over(backend: B) -> Self {
        StoreBuilder::with_options(backend, NetworkSettings::default())
    }
}

impl<B: Backend, C: Codec> StoreBuilder<B, C> {
    /// The store over the backend given to [`StoreBuilder::over`].
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// let store: EncodedStore<Nowhere> = StoreBuilder::over(Nowhere).build()?;
    /// # let _ = store;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn build(self) -> Result<EncodedStore<B, C>, StoreError> {
        let backend = self.options.clone();
        Ok(self.finish(backend))
    }
}
