//! [`RedisStore`]: a cache shared by every process that talks to one Redis server.
//!
//! Keys are `<prefix>:<namespace>:<version>:<key encoded with MessagePack>`, so two memoized
//! functions, or two applications with different prefixes, never share an entry, and the
//! encoding of a tuple key is injective. Values are MessagePack too; bytes that no longer
//! decode (the value type changed, or someone wrote garbage) are reported as
//! [`StoreError::Corrupt`], which the memoization layer treats as a miss and overwrites.
//!
//! Every call is bounded by a connect and an operation timeout. After a failed connect
//! the store does not try again for `retry_after`, answering
//! [`StoreError::Unavailable`] at once, so a dead server costs callers nothing but the
//! computation they would have done anyway; it reconnects by itself afterwards.

use std::future::Future;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::cluster_async::ClusterConnection as AsyncClusterConnection;
use redis::{Cmd, Connection, ConnectionLike, FromRedisValue, RedisError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{
    self, decode_found, decode_value, encode_value, Backoff, Codec, KeyOptions, KeySpace,
    MessagePack,
};
use crate::store::CasTokenRepr;
use crate::{CacheApi, CasToken, Store, StoreError};

/// A [`Store`] on a Redis server, for sync and async memoized functions.
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
pub struct RedisStore<C = MessagePack> {
    codec: C,
    server: Server,
    keys: KeySpace,
    connect_timeout: Duration,
    operation_timeout: Duration,
    /// Connections for sync callers, each opened on first need: a blocking connection
    /// serves one call at a time, so threads that call at once take different ones.
    sync_connections: Box<[Mutex<Option<SyncConnection>>]>,
    async_connection: RwLock<Option<AsyncConnection>>,
    next_slot: std::sync::atomic::AtomicUsize,
    backoff: Backoff,
}

/// Settings of a [`RedisStore`]; from [`RedisStore::builder`].
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
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder<C = MessagePack> {
    codec: C,
    topology: Topology,
    keys: KeyOptions,
    connect_timeout: Duration,
    operation_timeout: Duration,
    retry_after: Duration,
    pool_size: usize,
}

/// Where the keys live: one server, or a Redis Cluster that shards them by hash slot.
#[derive(Debug, Clone)]
enum Topology {
    Single(String),
    Cluster(Vec<String>),
}

enum Server {
    Single(redis::Client),
    Cluster {
        client: Box<ClusterClient>,
        /// The nodes named by the user, for `clear`, which must visit each of them.
        nodes: Vec<redis::Client>,
    },
}

enum SyncConnection {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl SyncConnection {
    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            SyncConnection::Single(connection) => connection,
            SyncConnection::Cluster(connection) => &mut **connection,
        }
    }
}

/// Both kinds multiplex and reconnect by themselves, and are cheap to clone.
#[derive(Clone)]
enum AsyncConnection {
    Single(ConnectionManager),
    Cluster(AsyncClusterConnection),
}

impl RedisStore {
    /// A store on the server at `url` (`redis://host:port/db`) with default settings.
    ///
    /// ```
    /// let store = cachemacro_runtime::RedisStore::open("redis://127.0.0.1:6379/");
    /// assert!(store.is_ok());
    /// assert!(cachemacro_runtime::RedisStore::open("not a url").is_err());
    /// ```
    pub fn open(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::builder(url).build()
    }

    /// Settings for a store on the server at `url`: prefix `cachemacro`, connect timeout
    /// 50 ms, operation timeout 100 ms, retry after 1 s, up to 4
    /// blocking connections for sync callers.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Topology::Single(url.into()))
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
        RedisStoreBuilder::new(Topology::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }
}

impl RedisStoreBuilder {
    fn new(topology: Topology) -> RedisStoreBuilder {
        RedisStoreBuilder {
            codec: MessagePack,
            topology,
            keys: KeyOptions::default(),
            connect_timeout: Duration::from_millis(50),
            operation_timeout: Duration::from_millis(100),
            retry_after: Duration::from_secs(1),
            pool_size: 4,
        }
    }
}

impl<C: Codec> RedisStore<C> {
    fn is_cluster(&self) -> bool {
        matches!(self.server, Server::Cluster { .. })
    }

    fn encode_key<K: Serialize>(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        codec::encode_key(self.keys.as_str(), key)
    }

    /// `SCAN MATCH` pattern of this namespace, with glob characters escaped.
    fn namespace_pattern(&self) -> String {
        let mut pattern = String::new();
        for character in self.keys.namespace_str().chars() {
            if matches!(character, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(character);
        }
        pattern.push('*');
        pattern
    }

    fn to_store_error(&self, error: RedisError) -> StoreError {
        if error.is_timeout() {
            StoreError::Timeout(self.operation_timeout)
        } else {
            StoreError::Unavailable(error.to_string())
        }
    }

    /// Runs `command` on the blocking connection.
    fn run_sync<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, StoreError> {
        self.with_sync_connection(|connection| command.query(connection))
    }

    /// Runs `request` on the blocking connection, connecting first if needed.
    fn with_sync_connection<T>(
        &self,
        request: impl FnOnce(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.backoff.check("Redis server")?;
        let mut slot = self.sync_slot();
        if slot.is_none() {
            let connection = self.connect_sync().map_err(|error| {
                self.backoff.trip();
                self.to_store_error(error)
            })?;
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("connected above");
        request(connection.as_dyn()).map_err(|error| {
            // The connection may be half-read after an I/O error or timeout: drop it
            // and start clean next time.
            if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
                *slot = None;
            }
            self.to_store_error(error)
        })
    }

    /// The first idle connection slot, or, when every one is busy, a turn on one of
    /// them. Trying in order keeps connections unopened until concurrency needs them.
    fn sync_slot(&self) -> std::sync::MutexGuard<'_, Option<SyncConnection>> {
        for slot in self.sync_connections.iter() {
            match slot.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let turn = self
            .next_slot
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sync_connections[turn % self.sync_connections.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn connect_sync(&self) -> redis::RedisResult<SyncConnection> {
        match &self.server {
            Server::Single(client) => {
                let connection = client.get_connection_with_timeout(self.connect_timeout)?;
                connection.set_read_timeout(Some(self.operation_timeout))?;
                connection.set_write_timeout(Some(self.operation_timeout))?;
                Ok(SyncConnection::Single(connection))
            }
            Server::Cluster { client, .. } => {
                Ok(SyncConnection::Cluster(Box::new(client.get_connection()?)))
            }
        }
    }

    async fn connect_async(&self) -> redis::RedisResult<AsyncConnection> {
        match &self.server {
            Server::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.operation_timeout))
                    .set_number_of_retries(1);
                Ok(AsyncConnection::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            Server::Cluster { client, .. } => Ok(AsyncConnection::Cluster(
                client.get_async_connection().await?,
            )),
        }
    }

    async fn async_connection(&self) -> Result<AsyncConnection, StoreError> {
        self.backoff.check("Redis server")?;
        if let Some(connection) = self
            .async_connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let connection =
            match tokio::time::timeout(self.connect_timeout * 2, self.connect_async()).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    self.backoff.trip();
                    return Err(self.to_store_error(error));
                }
                Err(_) => {
                    self.backoff.trip();
                    return Err(StoreError::Timeout(self.connect_timeout));
                }
            };
        *self
            .async_connection
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `request` (a command or a pipeline) on the multiplexed, self-reconnecting
    /// async connection.
    async fn run_async<T: FromRedisValue>(
        &self,
        request: impl Into<Request>,
    ) -> Result<T, StoreError> {
        let request = request.into();
        let answer = async {
            let result = match self.async_connection().await? {
                AsyncConnection::Single(mut connection) => {
                    request.query_async(&mut connection).await
                }
                AsyncConnection::Cluster(mut connection) => {
                    request.query_async(&mut connection).await
                }
            };
            result.map_err(|error| self.to_store_error(error))
        };
        match tokio::time::timeout(self.operation_timeout, answer).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.operation_timeout)),
        }
    }

    fn set_command(&self, key: Vec<u8>, value: Vec<u8>, ttl: Option<Duration>) -> Cmd {
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value);
        if let Some(ttl) = ttl {
            command.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        command
    }

    fn scan_command(&self, cursor: u64) -> Cmd {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(self.namespace_pattern())
            .arg("COUNT")
            .arg(500);
        command
    }
}

/// What the async path sends: one command, or a pipeline of them.
enum Request {
    Command(Cmd),
    Pipeline(redis::Pipeline),
}

impl From<Cmd> for Request {
    fn from(command: Cmd) -> Request {
        Request::Command(command)
    }
}

impl From<redis::Pipeline> for Request {
    fn from(pipeline: redis::Pipeline) -> Request {
        Request::Pipeline(pipeline)
    }
}

impl Request {
    async fn query_async<T: FromRedisValue>(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> redis::RedisResult<T> {
        match self {
            Request::Command(command) => command.query_async(connection).await,
            Request::Pipeline(pipeline) => pipeline.query_async(connection).await,
        }
    }
}

fn delete_command(keys: Vec<Vec<u8>>) -> Cmd {
    let mut command = redis::cmd("DEL");
    command.arg(keys);
    command
}

impl<C: Codec> RedisStoreBuilder<C> {
    codec::key_setters!();

    /// How values are written (default [`MessagePack`]); keys are always MessagePack.
    ///
    /// ```
    /// use cachemacro_runtime::{MessagePack, RedisStore};
    ///
    /// let store: RedisStore<MessagePack> = RedisStore::builder("redis://127.0.0.1:6379/")
    ///     .codec(MessagePack)
    ///     .build()?;
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn codec<D: Codec>(self, codec: D) -> RedisStoreBuilder<D> {
        RedisStoreBuilder {
            codec,
            topology: self.topology,
            keys: self.keys,
            connect_timeout: self.connect_timeout,
            operation_timeout: self.operation_timeout,
            retry_after: self.retry_after,
            pool_size: self.pool_size,
        }
    }

    codec::timeout_setters!();

    /// How many blocking connections sync callers share (default 4), opened as
    /// concurrent calls need them. Async callers share one multiplexed connection
    /// whatever this says.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// The store. Fails only on an invalid URL: nothing is connected until first use.
    pub fn build(self) -> Result<RedisStore<C>, StoreError> {
        let open = |url: &str| {
            redis::Client::open(url).map_err(|error| {
                StoreError::Unavailable(format!("invalid Redis URL `{url}`: {error}"))
            })
        };
        let server = match &self.topology {
            Topology::Single(url) => Server::Single(open(url)?),
            Topology::Cluster(urls) => Server::Cluster {
                client: ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.operation_timeout)
                    .build()
                    .map(Box::new)
                    .map_err(|error| {
                        StoreError::Unavailable(format!("invalid Redis Cluster nodes: {error}"))
                    })?,
                nodes: urls.iter().map(|url| open(url)).collect::<Result<_, _>>()?,
            },
        };
        Ok(RedisStore {
            codec: self.codec,
            server,
            keys: self.keys.into_key_space(),
            connect_timeout: self.connect_timeout,
            operation_timeout: self.operation_timeout,
            backoff: Backoff::new(self.retry_after),
            sync_connections: (0..self.pool_size.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            async_connection: RwLock::new(None),
            next_slot: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

impl<K, V, C: Codec> Store<K, V> for RedisStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = self.encode_key(key)?;
        decode_found(&self.codec, self.run_sync(redis::cmd("GET").arg(key))?)
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        let command = self.set_command(
            self.encode_key(&key)?,
            encode_value(&self.codec, &value)?,
            ttl,
        );
        self.run_sync(&command)
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        Ok(self.run_sync::<u64>(redis::cmd("DEL").arg(key))? > 0)
    }

    /// Deletes this namespace's keys, found with `SCAN` (never `FLUSHDB`, which would
    /// take other applications' keys too). On a cluster every node is scanned, and keys
    /// are deleted one by one, as a multi-key `DEL` must stay within one hash slot.
    fn clear(&self) -> Result<(), StoreError> {
        match &self.server {
            Server::Single(_) => {
                self.with_sync_connection(|connection| self.clear_on(connection, true))
            }
            Server::Cluster { nodes, .. } => nodes.iter().try_for_each(|node| {
                let mut connection = node
                    .get_connection_with_timeout(self.connect_timeout)
                    .map_err(|error| self.to_store_error(error))?;
                self.clear_on(&mut connection, false)
                    .map_err(|error| self.to_store_error(error))
            }),
        }
    }

    fn with_namespace(mut self, namespace: &'static str) -> Self {
        self.keys.adopt_namespace(namespace);
        self
    }

    fn get_async(&self, key: &K) -> impl Future<Output = Result<Option<V>, StoreError>> + Send
    where
        V: Send,
    {
        let key = self.encode_key(key);
        async move {
            let mut command = redis::cmd("GET");
            command.arg(key?);
            decode_found(&self.codec, self.run_async(command).await?)
        }
    }

    fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let command = self
            .encode_key(&key)
            .and_then(|key| Ok(self.set_command(key, encode_value(&self.codec, &value)?, ttl)));
        async move { self.run_async(command?).await }
    }

    fn remove_async(&self, key: &K) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let key = self.encode_key(key);
        async move {
            let mut command = redis::cmd("DEL");
            command.arg(key?);
            Ok(self.run_async::<u64>(command).await? > 0)
        }
    }
}

impl<C: Codec> RedisStore<C> {
    fn clear_on(&self, connection: &mut dyn ConnectionLike, batch: bool) -> redis::RedisResult<()> {
        let mut cursor = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self.scan_command(cursor).query(connection)?;
            if batch && !keys.is_empty() {
                delete_command(keys).query::<u64>(connection)?;
            } else {
                for key in keys {
                    delete_command(vec![key]).query::<u64>(connection)?;
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl<C> std::fmt::Debug for RedisStore<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisStore")
            .field(
                "topology",
                &match &self.server {
                    Server::Single(client) => client.get_connection_info().addr().to_string(),
                    Server::Cluster { nodes, .. } => {
                        format!("cluster of {} seed nodes", nodes.len())
                    }
                },
            )
            .field("keys", &self.keys.as_str())
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

/// Compare-and-set: write only if the key still holds the bytes the caller read (`''` for
/// "nothing"). One script, so the check and the write are one atomic step on the server.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
  return 1
end
return 0
";

/// `touch` with no ttl: `PERSIST` alone cannot tell "missing" from "already persistent".
/// `INCRBY` only if the key exists (no `INCRBY` option says so).
const INCR_EXISTING_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
";

const PERSIST_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PERSIST', KEYS[1])
  return 1
end
return 0
";

fn script(source: &str, key: Vec<u8>) -> Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(source).arg(1).arg(key);
    command
}

fn ttl_millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| ttl.as_millis().max(1) as u64)
}

/// The commands of the low-level API, built once for the sync and the async path.
impl<C: Codec> RedisStore<C> {
    fn add_command<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<Cmd, StoreError> {
        let mut command = self.set_command(
            self.encode_key(key)?,
            encode_value(&self.codec, value)?,
            ttl,
        );
        command.arg("NX");
        Ok(command)
    }

    fn touch_command<K: Serialize>(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> Result<Cmd, StoreError> {
        let key = self.encode_key(key)?;
        Ok(match ttl {
            Some(_) => redis::cmd("PEXPIRE").arg(key).arg(ttl_millis(ttl)).clone(),
            None => script(PERSIST_SCRIPT, key),
        })
    }

    fn incr_command<K: Serialize>(&self, key: &K, delta: i64) -> Result<Cmd, StoreError> {
        Ok(redis::cmd("INCRBY")
            .arg(self.encode_key(key)?)
            .arg(delta)
            .clone())
    }

    fn get_command<K: Serialize>(&self, key: &K) -> Result<Cmd, StoreError> {
        Ok(redis::cmd("GET").arg(self.encode_key(key)?).clone())
    }

    fn read_gets<V: DeserializeOwned>(
        &self,
        found: Option<Vec<u8>>,
    ) -> Result<Option<(V, CasToken)>, StoreError> {
        found
            .map(|bytes| {
                let value = decode_value(&self.codec, &bytes)?;
                Ok((value, CasToken(CasTokenRepr::Bytes(bytes))))
            })
            .transpose()
    }

    fn cas_command<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<Cmd, StoreError> {
        let CasToken(CasTokenRepr::Bytes(expected)) = token else {
            return Err(CasToken::foreign());
        };
        let mut command = script(CAS_SCRIPT, self.encode_key(key)?);
        command
            .arg(expected.as_slice())
            .arg(encode_value(&self.codec, value)?)
            .arg(ttl_millis(ttl));
        Ok(command)
    }

    /// `MGET` of `keys`; on a cluster `None`, as a multi-key command must stay within one
    /// hash slot and the caller goes key by key.
    fn mget_command<K: Serialize>(&self, keys: &[K]) -> Result<Option<Cmd>, StoreError> {
        if self.is_cluster() {
            return Ok(None);
        }
        let encoded = self.encode_keys(keys)?;
        Ok(Some(redis::cmd("MGET").arg(encoded).clone()))
    }

    fn set_pipeline<K: Serialize, V: Serialize>(
        &self,
        entries: &[(K, V)],
        ttl: Option<Duration>,
    ) -> Result<redis::Pipeline, StoreError> {
        let mut pipeline = redis::pipe();
        for (key, value) in entries {
            pipeline
                .add_command(self.set_command(
                    self.encode_key(key)?,
                    encode_value(&self.codec, value)?,
                    ttl,
                ))
                .ignore();
        }
        Ok(pipeline)
    }

    fn encode_keys<K: Serialize>(&self, keys: &[K]) -> Result<Vec<Vec<u8>>, StoreError> {
        keys.iter().map(|key| self.encode_key(key)).collect()
    }
}

/// On a cluster the batched calls go key by key: a multi-key command must stay within one
/// hash slot. Empty batches send nothing (`MGET` and `DEL` need a key).
impl<K, V, C: Codec> CacheApi<K, V> for RedisStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let command = self.add_command(&key, &value, ttl)?;
        Ok(self.run_sync::<Option<String>>(&command)?.is_some())
    }

    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError> {
        Ok(self.run_sync::<i64>(&self.touch_command(key, ttl)?)? == 1)
    }

    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        self.run_sync(&self.incr_command(key, delta)?)
    }

    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError> {
        let mut command = script(INCR_EXISTING_SCRIPT, self.encode_key(key)?);
        command.arg(delta);
        self.run_sync(&command)
    }

    /// The entry keeps its remaining time to live. Not a script: in a cluster the two
    /// keys may live on different nodes.
    fn incr_version(&self, key: &K, delta: i64) -> Result<Option<u64>, StoreError> {
        let version = self.keys.shifted_version(delta)?;
        let old = self.encode_key(key)?;
        let new = codec::encode_key(&self.keys.at_version(version), key)?;
        let Some(value) = self.run_sync::<Option<Vec<u8>>>(redis::cmd("GET").arg(&old))? else {
            return Ok(None);
        };
        let remaining: i64 = self.run_sync(redis::cmd("PTTL").arg(&old))?;
        let ttl = u64::try_from(remaining).ok().map(Duration::from_millis);
        self.run_sync::<()>(&self.set_command(new, value, ttl))?;
        self.run_sync::<i64>(&delete_command(vec![old]))?;
        Ok(Some(version))
    }

    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError> {
        self.read_gets(self.run_sync(&self.get_command(key)?)?)
    }

    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let command = self.cas_command(&key, &value, token, ttl)?;
        Ok(self.run_sync::<i64>(&command)? == 1)
    }

    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError> {
        let Some(command) = self.mget_command(keys)? else {
            return keys.iter().map(|key| self.get(key)).collect();
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<Option<Vec<u8>>> = self.run_sync(&command)?;
        found
            .into_iter()
            .map(|found| decode_found(&self.codec, found))
            .collect()
    }

    fn set_many(&self, entries: Vec<(K, V)>, ttl: Option<Duration>) -> Result<(), StoreError> {
        if self.is_cluster() {
            return entries
                .into_iter()
                .try_for_each(|(key, value)| self.insert(key, value, ttl));
        }
        let pipeline = self.set_pipeline(&entries, ttl)?;
        self.with_sync_connection(|connection| pipeline.query::<()>(connection))
    }

    fn delete_many(&self, keys: &[K]) -> Result<usize, StoreError> {
        if self.is_cluster() {
            let mut removed = 0;
            for key in keys {
                removed += usize::from(Store::<K, V>::remove(self, key)?);
            }
            return Ok(removed);
        }
        if keys.is_empty() {
            return Ok(0);
        }
        Ok(self.run_sync::<u64>(&delete_command(self.encode_keys(keys)?))? as usize)
    }

    fn add_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let command = self.add_command(&key, &value, ttl);
        async move { Ok(self.run_async::<Option<String>>(command?).await?.is_some()) }
    }

    fn touch_async(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let command = self.touch_command(key, ttl);
        async move { Ok(self.run_async::<i64>(command?).await? == 1) }
    }

    fn incr_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let command = self.incr_command(key, delta);
        async move { self.run_async(command?).await }
    }

    fn gets_async(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Option<(V, CasToken)>, StoreError>> + Send
    where
        V: Send,
    {
        let command = self.get_command(key);
        async move { self.read_gets(self.run_async(command?).await?) }
    }

    fn cas_async(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let command = self.cas_command(&key, &value, token, ttl);
        async move { Ok(self.run_async::<i64>(command?).await? == 1) }
    }

    fn get_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<Option<V>>, StoreError>> + Send
    where
        V: Send,
    {
        let command = self.mget_command(keys);
        async move {
            let Some(command) = command? else {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    values.push(self.get_async(key).await?);
                }
                return Ok(values);
            };
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let found: Vec<Option<Vec<u8>>> = self.run_async(command).await?;
            found
                .into_iter()
                .map(|found| decode_found(&self.codec, found))
                .collect()
        }
    }

    async fn set_many_async(
        &self,
        entries: Vec<(K, V)>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if self.is_cluster() {
            for (key, value) in entries {
                self.insert_async(key, value, ttl).await?;
            }
            return Ok(());
        }
        let pipeline = self.set_pipeline(&entries, ttl)?;
        self.run_async::<()>(pipeline).await
    }

    async fn delete_many_async(&self, keys: &[K]) -> Result<usize, StoreError> {
        if self.is_cluster() {
            let mut removed = 0;
            for key in keys {
                removed += usize::from(Store::<K, V>::remove_async(self, key).await?);
            }
            return Ok(removed);
        }
        if keys.is_empty() {
            return Ok(0);
        }
        let command = delete_command(self.encode_keys(keys)?);
        Ok(self.run_async::<u64>(command).await? as usize)
    }
}
