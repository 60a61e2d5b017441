//! The Redis backend: a cache shared by every process that talks to one Redis server, one
//! Redis Cluster, or the master of a Sentinel-managed group.
//!
//! Sync callers use a small pool of blocking connections, async callers one multiplexed
//! connection; both send the same commands ([`commands::perform`]). A connection that
//! breaks is replaced, through the sentinels when there are some ([`sentinel`]). `clear`
//! scans this namespace's keys (never `FLUSHDB`, which would take other applications'
//! keys too).

mod commands;
mod sentinel;
mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::{ConnectionLike, RedisConnectionInfo};

use self::sentinel::Sentinels;
use self::transport::{
    breaks_connection, to_store_error, Blocking, Connections, Server, Transport,
};
use crate::blocking::complete_now;
use crate::store::api::CasToken;
use crate::store::encoded::backend::{Backend, Op, Reply};
use crate::store::encoded::builder::{sealed, NetworkSettings, ServerOptions, StoreBuilder};
use crate::store::encoded::codec::{Codec, MessagePack};
use crate::store::encoded::EncodedStore;
use crate::store::StoreError;

/// A [`Store`](crate::Store) and [`CacheApi`](crate::CacheApi) on a Redis server, a
/// Redis Cluster or a Sentinel-managed master, for sync and async memoized functions.
///
/// Keys are `<prefix>:<namespace>:<version>:<key as MessagePack>`; values are MessagePack
/// (or the builder's [`Codec`]), integers decimal text so that `INCRBY` counts them.
/// After a failed or timed-out call the server is skipped for `retry_after`, so a dead
/// server costs callers the computation, not a timeout each.
///
/// ```no_run
/// use cachemacro_runtime::{memoize, RedisStore};
///
/// fn redis_store() -> RedisStore {
///     RedisStore::builder("redis://127.0.0.1:6379/")
///         .prefix("bookshop")
///         .build()
///         .expect("a valid Redis URL")
/// }
///
/// #[memoize(ttl = "15m", store = redis_store())]
/// fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
///     vec![format!("{postcode} within {radius} km")]
/// }
///
/// // Served from Redis by any process using the same prefix, and still computed
/// // (not failed) when the server is down.
/// let shops = nearby_stores("EC1A 1BB", 5);
/// # let _ = shops;
/// ```
pub type RedisStore<C = MessagePack> = EncodedStore<Redis, C>;

/// Settings of a [`RedisStore`]; from [`RedisStore::builder`], [`RedisStore::cluster`] or
/// [`RedisStore::sentinel`].
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("bookshop")
///     .namespace("pages")
///     .connect_timeout(Duration::from_millis(100))
///     .operation_timeout(Duration::from_millis(200))
///     .retry_after(Duration::from_secs(2))
///     .pool_size(8)
///     .build();
/// assert!(store.is_ok()); // nothing is connected until the first call
/// ```
pub type RedisStoreBuilder<C = MessagePack> = StoreBuilder<RedisOptions, C>;

/// Where a [`RedisStore`]'s keys live: one server, a Redis Cluster that shards them by
/// hash slot, or the master that sentinels name. Built by [`RedisStore::builder`],
/// [`RedisStore::cluster`] and [`RedisStore::sentinel`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    nodes: Vec<String>,
    topology: Topology,
}

#[derive(Debug, Clone)]
enum Topology {
    Single,
    Cluster,
    Sentinel {
        master_name: String,
        /// Database and credentials on the master; its `Debug` hides the password.
        master: RedisConnectionInfo,
        /// How often operations ask whether the master moved.
        recheck: Duration,
    },
}

impl sealed::Sealed for RedisOptions {}
impl ServerOptions for RedisOptions {}

/// The Redis [`Backend`] of [`RedisStore`]. Clones share the connections.
#[derive(Clone)]
pub struct Redis {
    connections: Arc<Connections>,
}

impl RedisStore {
    /// A store on the server at `url` (`redis://host:port/db`) with default settings;
    /// nothing is connected until the first call.
    ///
    /// ```
    /// use cachemacro_runtime::RedisStore;
    ///
    /// assert!(RedisStore::new("redis://127.0.0.1:6379/").is_ok());
    /// assert!(RedisStore::new("not a url").is_err());
    /// ```
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::builder(url).build()
    }

    /// Settings for a store on the server at `url`: prefix `cachemacro`, connect timeout
    /// 50 ms, operation timeout 100 ms, retry after 1 s, up to 4 blocking connections for
    /// sync callers (async callers share one multiplexed connection).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        StoreBuilder::with_options(
            RedisOptions {
                nodes: vec![url.into()],
                topology: Topology::Single,
            },
            NetworkSettings::default(),
        )
    }

    /// Settings for a store on a Redis Cluster reached through any of `nodes`
    /// (`redis://host:port/` each); keys are routed to the node owning their hash slot.
    ///
    /// ```
    /// use cachemacro_runtime::RedisStore;
    ///
    /// let store = RedisStore::cluster(["redis://127.0.0.1:7000/", "redis://127.0.0.1:7001/"])
    ///     .prefix("bookshop")
    ///     .build();
    /// assert!(store.is_ok()); // nothing is connected until the first call
    /// ```
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> RedisStoreBuilder {
        StoreBuilder::with_options(
            RedisOptions {
                nodes: nodes.into_iter().map(Into::into).collect(),
                topology: Topology::Cluster,
            },
            NetworkSettings::default(),
        )
    }

    /// Settings for a store on the master that the sentinels at `sentinels`
    /// (`redis://host:port/` each, with `user:password@` if they require it) monitor
    /// under `master_name`.
    ///
    /// Every connection the store opens asks the sentinels in turn (the one that answered
    /// last first, each within the connect timeout) which node is master, and checks with
    /// `ROLE` that it is. A failover breaks the connections to the old master (or it
    /// answers writes with `READONLY` once demoted): each such call is a store fault (the
    /// caller computes, as in any outage, and the server is skipped for `retry_after`),
    /// the connection is dropped, and the next one goes to the new master. An old master
    /// that survives its failover takes writes until the sentinels demote it (four
    /// publish periods, 8 s by default), writes the new master would never see: so at
    /// most once a second ([`sentinel_recheck`]) an operation also asks, in the
    /// background, which node the sentinels name, and once they name another, the next
    /// operation replaces every connection. Lookups run on a thread of the store's own
    /// (a one-thread tokio runtime, started by the first connect). The master's database
    /// and credentials are set with
    /// [`sentinel_master_db`], [`sentinel_master_username`] and
    /// [`sentinel_master_password`].
    ///
    /// [`sentinel_recheck`]: RedisStoreBuilder::sentinel_recheck
    /// [`sentinel_master_db`]: RedisStoreBuilder::sentinel_master_db
    /// [`sentinel_master_username`]: RedisStoreBuilder::sentinel_master_username
    /// [`sentinel_master_password`]: RedisStoreBuilder::sentinel_master_password
    ///
    /// ```
    /// use cachemacro_runtime::RedisStore;
    ///
    /// let sentinels = [
    ///     "redis://10.0.0.1:26379/",
    ///     "redis://10.0.0.2:26379/",
    ///     "redis://10.0.0.3:26379/",
    /// ];
    /// let store = RedisStore::sentinel(sentinels, "bookshop")
    ///     .prefix("bookshop")
    ///     .build();
    /// assert!(store.is_ok()); // nothing is connected until the first call
    /// ```
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: impl Into<String>,
    ) -> RedisStoreBuilder {
        StoreBuilder::with_options(
            RedisOptions {
                nodes: sentinels.into_iter().map(Into::into).collect(),
                topology: Topology::Sentinel {
                    master_name: master_name.into(),
                    master: RedisConnectionInfo::default(),
                    recheck: Duration::from_secs(1),
                },
            },
            NetworkSettings::default(),
        )
    }
}

impl<C> RedisStoreBuilder<C> {
    /// The database number to select on a [`sentinel`](RedisStore::sentinel) store's
    /// master (default 0). The other stores take it from their URL
    /// (`redis://host:port/2`), where this setting is ignored.
    ///
    /// ```
    /// use cachemacro_runtime::RedisStore;
    ///
    /// let store = RedisStore::sentinel(["redis://127.0.0.1:26379/"], "bookshop")
    ///     .sentinel_master_db(2)
    ///     .build();
    /// assert!(store.is_ok());
    /// ```
    pub fn sentinel_master_db(self, db: i64) -> Self {
        self.with_master(|master| master.set_db(db))
    }

    /// The ACL user a [`sentinel`](RedisStore::sentinel) store logs in to the master as
    /// (with [`sentinel_master_password`](Self::sentinel_master_password)). The
    /// sentinels' own credentials go in their URLs; the other stores take theirs from
    /// their URL, where this setting is ignored.
    ///
    /// ```
    /// use cachemacro_runtime::RedisStore;
    ///
    /// let store = RedisStore::sentinel(["redis://watcher:s3cret@127.0.0.1:26379/"], "bookshop")
    ///     .sentinel_master_username("cache")
    ///     .sentinel_master_password("hunter2")
    ///     .build();
    /// assert!(store.is_ok());
    /// ```
    pub fn sentinel_master_username(self, username: impl AsRef<str>) -> Self {
        self.with_master(|master| master.set_username(username))
    }

    /// The password a [`sentinel`](RedisStore::sentinel) store logs in to the master
    /// with (`AUTH password`, or `AUTH user password` with
    /// [`sentinel_master_username`](Self::sentinel_master_username)); ignored by the
    /// other stores, whose URLs carry it.
    ///
    /// ```
    /// use cachemacro_runtime::RedisStore;
    ///
    /// let store = RedisStore::sentinel(["redis://127.0.0.1:26379/"], "bookshop")
    ///     .sentinel_master_password("hunter2")
    ///     .build();
    /// assert!(store.is_ok());
    /// ```
    pub fn sentinel_master_password(self, password: impl AsRef<str>) -> Self {
        self.with_master(|master| master.set_password(password))
    }

    /// How often a [`sentinel`](RedisStore::sentinel) store asks the sentinels whether
    /// they name another master (default 1 s): the longest an old master that survived a
    /// failover keeps taking this store's writes after the sentinels promoted another.
    /// The question is asked in the background; no operation waits for it. Ignored by the
    /// other stores.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachemacro_runtime::RedisStore;
    ///
    /// let store = RedisStore::sentinel(["redis://127.0.0.1:26379/"], "bookshop")
    ///     .sentinel_recheck(Duration::from_millis(250))
    ///     .build();
    /// assert!(store.is_ok());
    /// ```
    pub fn sentinel_recheck(mut self, every: Duration) -> Self {
        if let Topology::Sentinel { recheck, .. } = &mut self.options.topology {
            *recheck = every;
        }
        self
    }

    fn with_master(
        mut self,
        change: impl FnOnce(RedisConnectionInfo) -> RedisConnectionInfo,
    ) -> Self {
        if let Topology::Sentinel { master, .. } = &mut self.options.topology {
            *master = change(std::mem::take(master));
        }
        self
    }
}

impl<C: Codec> RedisStoreBuilder<C> {
    /// The store. Fails only on an invalid URL (or no sentinel URL at all): nothing is
    /// connected until first use.
    pub fn build(self) -> Result<RedisStore<C>, StoreError> {
        let client = |url: &str| {
            redis::Client::open(url).map_err(|error| {
                StoreError::Unavailable(format!("invalid Redis URL `{url}`: {error}"))
            })
        };
        let network = self.network;
        let nodes = &self.options.nodes;
        let server = match &self.options.topology {
            Topology::Single => Server::Single(client(&nodes[0])?),
            Topology::Cluster => Server::Cluster {
                client: ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(network.connect_timeout)
                    .response_timeout(network.operation_timeout)
                    .build()
                    .map(Box::new)
                    .map_err(|error| {
                        StoreError::Unavailable(format!("invalid Redis Cluster nodes: {error}"))
                    })?,
                nodes: nodes
                    .iter()
                    .map(|url| client(url))
                    .collect::<Result<_, _>>()?,
            },
            Topology::Sentinel {
                master_name,
                master,
                recheck,
            } => Server::Sentinel(Box::new(
                Sentinels::new(
                    nodes,
                    master_name.clone(),
                    master.clone(),
                    network.connect_timeout,
                    *recheck,
                )
                .map_err(|error| {
                    StoreError::Unavailable(format!("invalid Redis Sentinel URLs: {error}"))
                })?,
            )),
        };
        let connections = Connections::new(
            server,
            network.connect_timeout,
            network.operation_timeout,
            network.pool_size,
        );
        Ok(self.finish(Redis {
            connections: Arc::new(connections),
        }))
    }
}

impl Redis {
    fn error(&self, error: redis::RedisError) -> StoreError {
        to_store_error(error, self.connections.operation_timeout)
    }

    /// Deletes the namespace's keys, found with `SCAN` on the server (the master, through
    /// Sentinel) or on every node of the cluster (one key per `DEL` there, as a multi-key
    /// `DEL` must stay in one slot).
    fn clear(&self, namespace: &[u8]) -> Result<Reply, StoreError> {
        let connections = &*self.connections;
        let pattern = scan_pattern(namespace);
        match &connections.server {
            Server::Single(_) | Server::Sentinel(_) => {
                let mut transport = Blocking(connections);
                complete_now(async {
                    scan_and_delete(&mut transport, &pattern, true)
                        .await
                        .map_err(|error| self.error(error))
                })
            }
            Server::Cluster { nodes, .. } => {
                for node in nodes {
                    let mut connection = node
                        .get_connection_with_timeout(connections.connect_timeout)
                        .map_err(|error| self.error(error))?;
                    let mut transport = NodeConnection(&mut connection);
                    complete_now(async {
                        scan_and_delete(&mut transport, &pattern, false)
                            .await
                            .map_err(|error| self.error(error))
                    })?;
                }
                Ok(Reply::Done)
            }
        }
    }
}

/// One cluster node's own connection, for scanning it.
struct NodeConnection<'a>(&'a mut redis::Connection);

impl Transport for NodeConnection<'_> {
    async fn send<T: redis::FromRedisValue + Send>(
        &mut self,
        request: transport::Request,
    ) -> redis::RedisResult<T> {
        let connection: &mut dyn ConnectionLike = self.0;
        match &request {
            transport::Request::Command(command) => command.query(connection),
            transport::Request::Pipeline(pipeline) => pipeline.query(connection),
        }
    }
}

async fn scan_and_delete(
    transport: &mut impl Transport,
    pattern: &str,
    batch: bool,
) -> redis::RedisResult<Reply> {
    let mut cursor = 0u64;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500);
        let (next, keys): (u64, Vec<Vec<u8>>) = transport.send(scan.into()).await?;
        if batch && !keys.is_empty() {
            transport.send::<u64>(commands::delete(keys)).await?;
        } else {
            for key in keys {
                transport.send::<u64>(commands::delete(vec![key])).await?;
            }
        }
        if next == 0 {
            return Ok(Reply::Done);
        }
        cursor = next;
    }
}

/// `SCAN MATCH` pattern of a namespace, with glob characters escaped.
fn scan_pattern(namespace: &[u8]) -> String {
    let mut pattern = String::new();
    for character in String::from_utf8_lossy(namespace).chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('*');
    pattern
}

impl Backend for Redis {
    fn describe(&self, _: usize) -> String {
        match &self.connections.server {
            Server::Single(client) => format!("Redis at {}", client.get_connection_info().addr()),
            Server::Cluster { nodes, .. } => format!("Redis Cluster ({} seed nodes)", nodes.len()),
            Server::Sentinel(sentinels) => format!(
                "Redis master `{}` ({} sentinels)",
                sentinels.master_name,
                sentinels.count()
            ),
        }
    }

    fn execute(&self, op: Op) -> Result<Reply, StoreError> {
        check_token(&op)?;
        if let Op::Clear { namespace } = &op {
            return self.clear(namespace);
        }
        let cluster = self.connections.is_cluster();
        let mut transport = Blocking(&self.connections);
        complete_now(async {
            commands::perform(&mut transport, cluster, op)
                .await
                .map_err(|error| self.error(error))
        })
    }

    async fn execute_async(&self, op: Op) -> Result<Reply, StoreError> {
        check_token(&op)?;
        if let Op::Clear { .. } = &op {
            // Scanning uses blocking connections of its own: off the executor.
            return crate::store::encoded::bridge::on_blocking_pool(self.clone(), op).await;
        }
        let timeout = self.connections.operation_timeout;
        let cluster = self.connections.is_cluster();
        let mut used = None;
        let answer = async {
            let (opened, mut transport) = self.connections.multiplexed().await?;
            used = Some(opened);
            commands::perform(&mut transport, cluster, op)
                .await
                .map_err(|error| {
                    if !breaks_connection(&error) {
                        used = None;
                    }
                    self.error(error)
                })
        };
        let outcome = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(error)) => error,
            Err(_) => StoreError::Timeout(timeout),
        };
        if let Some(opened) = used {
            self.connections.forget_multiplexed(opened);
        }
        Err(outcome)
    }
}

/// A token issued by another kind of store is the caller's mistake, not an outage.
fn check_token(op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Cas { token, .. } if token.as_bytes().is_none() => Err(CasToken::foreign()),
        _ => Ok(()),
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Redis")
            .field("server", &self.describe(0))
            .field("connect_timeout", &self.connections.connect_timeout)
            .field("operation_timeout", &self.connections.operation_timeout)
            .finish_non_exhaustive()
    }
}
