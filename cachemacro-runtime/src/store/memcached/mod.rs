//! The memcached backend: a pool over independent memcached servers, sharded by ketama.
//!
//! The servers never talk to each other: each key is hashed onto a consistent-hashing
//! ring ([`ketama`]) to pick its server, so adding a server scales the cache
//! horizontally and moves only about 1/N of the keys. A dead server's keys are not
//! re-routed to the others (that would leave stale copies behind when it returns): the
//! adapter skips it and callers compute. Every operation is memcached's text protocol
//! ([`text_protocol`]) on a small pool of connections per server ([`pool`]); batched
//! calls are one pipelined round trip per server and 512 keys. Keys carry their
//! namespace's version ([`keys`]), which `clear` bumps; counters are signed
//! ([`counters`]).

mod counters;
mod ketama;
mod keys;
mod pool;
mod text_protocol;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use self::counters::add_to_counter;
use self::ketama::KetamaRing;
use self::keys::{native_key, route_key, version_key, NamespaceVersions};
use self::pool::ConnectionPool;
use self::text_protocol::{expiry_field, StorageCommand, StoreReply};
use crate::store::api::CasToken;
use crate::store::encoded::backend::{namespace_of, Backend, Op, Reply};
use crate::store::encoded::builder::{sealed, NetworkSettings, ServerOptions, StoreBuilder};
use crate::store::encoded::codec::{Codec, MessagePack};
use crate::store::encoded::EncodedStore;
use crate::store::StoreError;

/// Keys per pipelined batch or multi-get: the replies of a batch wait in socket buffers
/// until it is all written, and a batch far beyond their size could stall both ends.
const PIPELINE_BATCH: usize = 512;

/// A [`Store`](crate::Store) and [`CacheApi`](crate::CacheApi) sharded over memcached
/// servers by consistent hashing, for sync and async memoized functions.
///
/// Keys are `<prefix>:<namespace>:<version>:v<namespace version>:` and the hex of the
/// MessagePack key (an MD5 of that when memcached would refuse it); values are
/// MessagePack (or the builder's [`Codec`]), integers decimal text so that `incr` counts
/// them. After a failed or timed-out call a server is skipped for `retry_after`, so a
/// dead server costs callers the computation, not a timeout each.
///
/// ```no_run
/// use cachemacro_runtime::{memoize, MemcachedStore};
///
/// fn memcached_pool() -> MemcachedStore {
///     MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"])
///         .prefix("bookshop")
///         .build()
///         .expect("at least one server")
/// }
///
/// #[memoize(ttl = "15m", store = memcached_pool())]
/// fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
///     vec![format!("{postcode} within {radius} km")]
/// }
/// # let _ = nearby_stores("EC1A 1BB", 5);
/// ```
pub type MemcachedStore<C = MessagePack> = EncodedStore<Memcached, C>;

/// Settings of a [`MemcachedStore`]; from [`MemcachedStore::builder`].
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::MemcachedStore;
///
/// let store = MemcachedStore::builder(["127.0.0.1:11211"])
///     .prefix("bookshop")
///     .connect_timeout(Duration::from_millis(100))
///     .operation_timeout(Duration::from_millis(200))
///     .retry_after(Duration::from_secs(2))
///     .pool_size(8)
///     .version_refresh(Duration::from_millis(500))
///     .build()?; // connects lazily, on first use
/// assert_eq!(store.server_count(), 1);
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
pub type MemcachedStoreBuilder<C = MessagePack> = StoreBuilder<MemcachedOptions, C>;

/// The memcached servers of a [`MemcachedStore`] and how often it re-reads namespace
/// versions; built by [`MemcachedStore::builder`].
///
/// ```
/// use cachemacro_runtime::backend::MemcachedOptions;
/// use cachemacro_runtime::{MemcachedStore, StoreBuilder};
///
/// let builder: StoreBuilder<MemcachedOptions> = MemcachedStore::builder(["127.0.0.1:11211"]);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedOptions {
    servers: Vec<String>,
    version_refresh: Duration,
}

impl sealed::Sealed for MemcachedOptions {}
impl ServerOptions for MemcachedOptions {}

/// The memcached [`Backend`] of [`MemcachedStore`]: the ring, one connection pool per
/// server, and the namespace versions last read. Clones share all three.
///
/// ```
/// use cachemacro_runtime::backend::{Backend, Memcached};
/// use cachemacro_runtime::MemcachedStore;
///
/// let store = MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211"]).build()?;
/// let backend: &Memcached = store.backend();
/// assert_eq!(backend.servers(), 2);
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Memcached {
    pools: Arc<[ConnectionPool]>,
    ring: Arc<KetamaRing>,
    versions: Arc<NamespaceVersions>,
}

impl MemcachedStore {
    /// Settings for a pool over `servers`, each `host:port`: prefix `cachemacro`, connect
    /// timeout 50 ms, operation timeout 100 ms, retry after 1 s, up to 4 connections a
    /// server, namespace versions re-read every second.
    ///
    /// ```
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211"])
    ///     .prefix("bookshop")
    ///     .build();
    /// assert!(store.is_ok()); // nothing is connected until the first call
    /// ```
    pub fn builder<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> MemcachedStoreBuilder {
        StoreBuilder::with_options(
            MemcachedOptions {
                servers: servers.into_iter().map(Into::into).collect(),
                version_refresh: Duration::from_secs(1),
            },
            NetworkSettings::default(),
        )
    }
}

impl<C: Codec> MemcachedStoreBuilder<C> {
    /// How often a namespace's version is re-read (default 1 s), i.e. how soon another
    /// process's `clear` is seen.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["127.0.0.1:11211"])
    ///     .version_refresh(Duration::from_millis(200))
    ///     .build();
    /// assert!(store.is_ok());
    /// ```
    pub fn version_refresh(mut self, every: Duration) -> Self {
        self.options.version_refresh = every;
        self
    }

    /// The store. Fails only without any server: nothing is connected until a key
    /// routes to a server.
    ///
    /// ```
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// assert!(MemcachedStore::builder(["127.0.0.1:11211"]).build().is_ok());
    /// assert!(MemcachedStore::builder(Vec::<String>::new()).build().is_err());
    /// ```
    pub fn build(self) -> Result<MemcachedStore<C>, StoreError> {
        let servers = &self.options.servers;
        if servers.is_empty() {
            return Err(StoreError::Unavailable(
                "no memcached servers configured".to_owned(),
            ));
        }
        let network = self.network;
        let backend = Memcached {
            ring: Arc::new(KetamaRing::new(servers)),
            pools: servers
                .iter()
                .map(|address| {
                    ConnectionPool::new(
                        address.clone(),
                        network.pool_size,
                        network.connect_timeout,
                        network.operation_timeout,
                    )
                })
                .collect(),
            versions: Arc::new(NamespaceVersions::new(self.options.version_refresh)),
        };
        Ok(self.finish(backend))
    }
}

impl<C: Codec> MemcachedStore<C> {
    /// How many servers the pool shards over.
    ///
    /// ```
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211"]).build()?;
    /// assert_eq!(store.server_count(), 2);
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn server_count(&self) -> usize {
        self.backend().pools.len()
    }

    /// The `host:port` of the server that holds `key` in this store's namespace; found
    /// without I/O, and the same before and after a `clear`.
    ///
    /// ```
    /// use cachemacro_runtime::MemcachedStore;
    ///
    /// let store = MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211"])
    ///     .namespace("books")
    ///     .build()?;
    /// let server = store.server_for(&(7u32,)).expect("a key that encodes");
    /// assert!(["10.0.0.1:11211", "10.0.0.2:11211"].contains(&server));
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn server_for<K: Serialize>(&self, key: &K) -> Option<&str> {
        let rendered = self.key_space().key(key).ok()?;
        let backend = self.backend();
        Some(backend.pools[backend.route(&rendered)].address())
    }
}

impl Memcached {
    fn pool_for(&self, rendered: &[u8]) -> &ConnectionPool {
        &self.pools[self.route(rendered)]
    }

    fn version_pool(&self, version_key: &str) -> &ConnectionPool {
        &self.pools[self.ring.server_for(version_key.as_bytes()).unwrap_or(0)]
    }

    /// The memcached key of `rendered`, at its namespace's current version.
    fn native_key(&self, rendered: &[u8]) -> String {
        let namespace = namespace_of(rendered);
        native_key(rendered, self.namespace_version(namespace))
    }

    /// The version counter of `namespace`, created at 0 when missing (as `clear` expects
    /// to find it); read at most once per `version_refresh`.
    fn namespace_version(&self, namespace: &[u8]) -> u64 {
        self.versions.current(namespace, || {
            let key = version_key(namespace);
            let read = self
                .version_pool(&key)
                .with_connection(|connection| add_to_counter(connection, &key, 0, true))
                .and_then(version_of);
            if let Err(error) = &read {
                tracing::debug!(%key, %error, "memcached namespace version unreadable; keeping the last one");
            }
            read
        })
    }

    /// Bumps the namespace's version, which every one of its keys contains: the old
    /// entries are never read again and age out with their ttl. Other processes see the
    /// bump within their `version_refresh`.
    fn clear(&self, namespace: &[u8]) -> Result<Reply, StoreError> {
        let key = version_key(namespace);
        let version = self
            .version_pool(&key)
            .with_connection(|connection| add_to_counter(connection, &key, 1, true))
            .and_then(version_of)?;
        self.versions.bumped(namespace, version);
        Ok(Reply::Done)
    }

    /// Memcached does not tell an entry's remaining time to live through the classic
    /// commands, so the moved entry never expires (Django resets it to the default
    /// timeout likewise).
    fn move_entry(&self, from: &[u8], to: &[u8]) -> Result<Reply, StoreError> {
        let (source, target) = (self.native_key(from), self.native_key(to));
        let Some(value) = self
            .pool_for(from)
            .with_connection(|connection| connection.get(&source))?
        else {
            return Ok(Reply::Applied(false));
        };
        self.pool_for(to)
            .with_connection(|connection| connection.set(&target, &value, 0))?;
        self.pool_for(from)
            .with_connection(|connection| connection.delete(&source))?;
        Ok(Reply::Applied(true))
    }

    /// Positions of `keys` grouped by the server holding each, at most
    /// [`PIPELINE_BATCH`] a group: the unit of every batched call.
    fn batches<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> Vec<(usize, Vec<usize>)> {
        let mut open: Vec<Vec<usize>> = vec![Vec::new(); self.pools.len()];
        let mut batches = Vec::new();
        for (at, key) in keys.enumerate() {
            let server = self.route(key);
            open[server].push(at);
            if open[server].len() == PIPELINE_BATCH {
                batches.push((server, std::mem::take(&mut open[server])));
            }
        }
        batches.extend(
            open.into_iter()
                .enumerate()
                .filter(|(_, batch)| !batch.is_empty()),
        );
        batches
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Reply, StoreError> {
        let natives: Vec<String> = keys.iter().map(|key| self.native_key(key)).collect();
        let mut values = vec![None; keys.len()];
        for (server, batch) in self.batches(keys.iter().map(Vec::as_slice)) {
            let names: Vec<&str> = batch.iter().map(|&at| natives[at].as_str()).collect();
            let found =
                self.pools[server].with_connection(|connection| connection.get_many(&names))?;
            for at in batch {
                // Cloned, not taken: a key asked for twice is found twice.
                values[at] = found.get(&natives[at]).cloned();
            }
        }
        Ok(Reply::Values(values))
    }

    fn set_many(
        &self,
        entries: &[(Vec<u8>, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<Reply, StoreError> {
        let expiry = expiry_field(ttl);
        let natives: Vec<String> = entries
            .iter()
            .map(|(key, _)| self.native_key(key))
            .collect();
        for (server, batch) in self.batches(entries.iter().map(|(key, _)| key.as_slice())) {
            let batch: Vec<(&str, &[u8])> = batch
                .iter()
                .map(|&at| (natives[at].as_str(), entries[at].1.as_slice()))
                .collect();
            self.pools[server].with_connection(|connection| connection.set_many(&batch, expiry))?;
        }
        Ok(Reply::Done)
    }

    fn delete_many(&self, keys: &[Vec<u8>]) -> Result<Reply, StoreError> {
        let natives: Vec<String> = keys.iter().map(|key| self.native_key(key)).collect();
        let mut deleted = 0;
        for (server, batch) in self.batches(keys.iter().map(Vec::as_slice)) {
            let names: Vec<&str> = batch.iter().map(|&at| natives[at].as_str()).collect();
            deleted +=
                self.pools[server].with_connection(|connection| connection.delete_many(&names))?;
        }
        Ok(Reply::Count(deleted))
    }

    /// Compare-and-set with memcached's CAS id; the token of "nothing there" is an `add`.
    fn cas(
        &self,
        key: &[u8],
        value: &[u8],
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<Reply, StoreError> {
        let command = match (token.unique(), token.as_bytes()) {
            (Some(unique), _) => StorageCommand::Cas(unique),
            (None, Some([])) => StorageCommand::Add,
            _ => return Err(CasToken::foreign()),
        };
        let native = self.native_key(key);
        let stored = self.pool_for(key).with_connection(|connection| {
            connection.store(command, &native, value, expiry_field(ttl))
        })?;
        Ok(Reply::Applied(stored == StoreReply::Stored))
    }
}

/// A namespace version as the counter holds it.
fn version_of(counter: Option<i64>) -> Result<u64, StoreError> {
    counter
        .and_then(|version| u64::try_from(version).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("namespace version {counter:?}")))
}

impl Backend for Memcached {
    fn servers(&self) -> usize {
        self.pools.len()
    }

    /// The ring's server for the key without its namespace version.
    fn route(&self, key: &[u8]) -> usize {
        self.ring.server_for(route_key(key).as_bytes()).unwrap_or(0)
    }

    fn clear_route(&self, namespace: &[u8]) -> Vec<usize> {
        vec![self
            .ring
            .server_for(version_key(namespace).as_bytes())
            .unwrap_or(0)]
    }

    fn describe(&self, server: usize) -> String {
        format!("memcached server {}", self.pools[server].address())
    }

    fn execute(&self, op: Op) -> Result<Reply, StoreError> {
        match op {
            Op::Get { key } => {
                let native = self.native_key(&key);
                let found = self
                    .pool_for(&key)
                    .with_connection(|connection| connection.get(&native))?;
                Ok(Reply::Value(found))
            }
            Op::GetMany { keys } => self.get_many(&keys),
            Op::Set { key, value, ttl } => {
                let native = self.native_key(&key);
                self.pool_for(&key).with_connection(|connection| {
                    connection.set(&native, &value, expiry_field(ttl))
                })?;
                Ok(Reply::Done)
            }
            Op::SetMany { entries, ttl } => self.set_many(&entries, ttl),
            Op::Add { key, value, ttl } => {
                let native = self.native_key(&key);
                let stored = self.pool_for(&key).with_connection(|connection| {
                    connection.store(StorageCommand::Add, &native, &value, expiry_field(ttl))
                })?;
                Ok(Reply::Applied(stored == StoreReply::Stored))
            }
            Op::Delete { key } => {
                let native = self.native_key(&key);
                let deleted = self
                    .pool_for(&key)
                    .with_connection(|connection| connection.delete(&native))?;
                Ok(Reply::Applied(deleted))
            }
            Op::DeleteMany { keys } => self.delete_many(&keys),
            Op::Touch { key, ttl } => {
                let native = self.native_key(&key);
                let touched = self
                    .pool_for(&key)
                    .with_connection(|connection| connection.touch(&native, expiry_field(ttl)))?;
                Ok(Reply::Applied(touched))
            }
            Op::Incr { key, delta, create } => {
                let native = self.native_key(&key);
                let counted = self.pool_for(&key).with_connection(|connection| {
                    add_to_counter(connection, &native, delta, create)
                })?;
                Ok(Reply::Counter(counted))
            }
            Op::Gets { key } => {
                let native = self.native_key(&key);
                let found = self
                    .pool_for(&key)
                    .with_connection(|connection| connection.gets(&native))?;
                Ok(Reply::Versioned(found.map(|(value, unique)| {
                    (value, CasToken::from_unique(unique))
                })))
            }
            Op::Cas {
                key,
                value,
                token,
                ttl,
            } => self.cas(&key, &value, &token, ttl),
            Op::Clear { namespace } => self.clear(&namespace),
            Op::Move { from, to } => self.move_entry(&from, &to),
        }
    }
}

impl fmt::Debug for Memcached {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Memcached")
            .field(
                "servers",
                &self
                    .pools
                    .iter()
                    .map(ConnectionPool::address)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
