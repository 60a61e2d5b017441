//! [`MemcachedStore`]: a pool over independent memcached servers, sharded by ketama.
//!
//! As in the seed article, the servers never talk to each other: the client hashes each
//! key onto a consistent-hashing ring ([`super::ketama`]) to pick its server, so adding a
//! server scales the cache horizontally and moves only about 1/N of the keys. The wire
//! protocol is the `memcache` crate's, one small connection pool per server, except for
//! `set_many` and `delete_many`: the crate sends one command per round trip, so those
//! pipeline text-protocol commands on a connection of their own per server (memcached
//! speaks both protocols on one port), one round trip per server and batch.
//!
//! A server that fails to connect is marked down for `retry_after`: its keys are not
//! re-routed to the others (that would leave stale copies behind when it returns) but
//! fall through to computing at once. It rejoins by itself on the first call after the
//! back-off.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{
    self, decode_found, encode_value, Backoff, Codec, KeyOptions, KeySpace, MessagePack,
};
use super::ketama::KetamaRing;
use crate::store::CasTokenRepr;
use crate::{CacheApi, CasToken, Store, StoreError};

/// Memcached refuses longer keys.
const MAX_KEY_LEN: usize = 250;
/// Memcached reads an expiry above 30 days as a Unix timestamp.
const MAX_RELATIVE_EXPIRY: u64 = 30 * 24 * 3600;

/// A [`Store`] sharded over memcached servers by consistent hashing.
///
/// ```no_run
/// use cachemacro_runtime::{memoize, MemcachedStore};
///
/// fn memcached_pool() -> MemcachedStore {
///     MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"])
///         .prefix("bookshop")
///         .build()
/// }
///
/// #[memoize(ttl = "15m", store = memcached_pool())]
/// fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
///     vec![format!("{postcode} within {radius} km")]
/// }
/// # let _ = nearby_stores("EC1A 1BB", 5);
/// ```
pub struct MemcachedStore<C = MessagePack> {
    codec: C,
    servers: Vec<Arc<Server>>,
    ring: KetamaRing,
    keys: KeySpace,
    settings: Settings,
    /// The namespace's version as last read from the server, and when.
    version: Mutex<Option<(u64, Instant)>>,
}

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
///     .pool_size(8)
///     .build(); // connects lazily, on first use
/// assert_eq!(store.server_count(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedStoreBuilder<C = MessagePack> {
    codec: C,
    servers: Vec<String>,
    keys: KeyOptions,
    settings: Settings,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    connect_timeout: Duration,
    operation_timeout: Duration,
    retry_after: Duration,
    pool_size: u32,
    version_refresh: Duration,
}

struct Server {
    address: String,
    client: Mutex<Option<Arc<memcache::Client>>>,
    /// The text-protocol connection of batched writes, opened on first need.
    pipeline: Mutex<Option<BufReader<TcpStream>>>,
    backoff: Backoff,
}

/// Commands per pipelined write: the replies of a batch wait in socket buffers until it
/// is all written, and a batch far beyond their size could stall both ends.
const PIPELINE_BATCH: usize = 512;

/// Items grouped by the server they go to, at most [`PIPELINE_BATCH`] a group.
type ServerGroups<T> = Vec<(Arc<Server>, Vec<T>)>;

/// Keys to read, by server: one multi-get each.
type KeyGroups = ServerGroups<String>;

/// One server's share of a batched write: the commands, and how many replies they get.
struct Batch {
    server: Arc<Server>,
    commands: Vec<u8>,
    count: usize,
}

impl MemcachedStore {
    /// Settings for a pool over `servers`, each `host:port`: prefix `cachemacro`, connect
    /// timeout 50 ms, operation timeout 100 ms, retry after 1 s, 4 connections a server.
    pub fn builder<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> MemcachedStoreBuilder {
        MemcachedStoreBuilder {
            codec: MessagePack,
            servers: servers.into_iter().map(Into::into).collect(),
            keys: KeyOptions::default(),
            settings: Settings {
                connect_timeout: Duration::from_millis(50),
                operation_timeout: Duration::from_millis(100),
                retry_after: Duration::from_secs(1),
                pool_size: 4,
                version_refresh: Duration::from_secs(1),
            },
        }
    }
}

impl<C: Codec> MemcachedStore<C> {
    /// How many servers the pool shards over.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// The `host:port` of the server that holds `key` of this store's namespace.
    pub fn server_for<K: Serialize>(&self, key: &K) -> Option<&str> {
        let key = self.encode_key(key).ok()?;
        let index = self.ring.server_for(key.as_bytes())?;
        Some(&self.servers[index].address)
    }

    /// The memcached key: `prefix:namespace:` and the hex of the MessagePack-encoded key,
    /// or, when that is too long or not plain ASCII, a fixed-length MD5 of it.
    fn encode_key<K: Serialize>(&self, key: &K) -> Result<String, StoreError> {
        self.encode_key_at(key, self.keys.as_str())
    }

    /// [`encode_key`](Self::encode_key) under the start of keys `space` (another version).
    fn encode_key_at<K: Serialize>(&self, key: &K, space: &str) -> Result<String, StoreError> {
        let bytes = codec::encode_key("", key)?;
        let mut text = format!("{space}v{}:", self.namespace_version());
        for byte in &bytes {
            let _ = write!(text, "{byte:02x}");
        }
        if text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
            let digest = Md5::digest(text.as_bytes());
            text = String::from("cachemacro:md5:");
            for byte in digest.iter() {
                let _ = write!(text, "{byte:02x}");
            }
        }
        Ok(text)
    }

    /// Where the namespace's version counter lives (on its own server of the ring).
    fn version_key(&self) -> String {
        format!("{}version", self.keys.namespace_str())
    }

    /// The namespace's current version: part of every key, so that bumping it (`clear`)
    /// orphans every entry at once, to age out with its ttl. Read from the server at
    /// most once per `version_refresh`; an unreachable server leaves the last one known.
    fn namespace_version(&self) -> u64 {
        let mut cached = self.version.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((version, read_at)) = *cached {
            if read_at.elapsed() < self.settings.version_refresh {
                return version;
            }
        }
        let key = self.version_key();
        // An increment by 0 reads the counter, creating it at 0 if it is missing.
        let read = self.run(&key, |client, key| client.increment(key, 0));
        let version = read.unwrap_or_else(|_| cached.map_or(0, |(version, _)| version));
        *cached = Some((version, Instant::now()));
        version
    }

    /// The server owning `key`, and a connected client for it.
    /// The server of the ring that holds `key`.
    fn server_of(&self, key: &str) -> Result<&Arc<Server>, StoreError> {
        let index = self
            .ring
            .server_for(key.as_bytes())
            .ok_or_else(|| StoreError::Unavailable("no memcached servers configured".to_owned()))?;
        Ok(&self.servers[index])
    }

    fn route(&self, key: &str) -> Result<(Arc<Server>, Arc<memcache::Client>), StoreError> {
        let server = Arc::clone(self.server_of(key)?);
        let client = server.client(&self.settings)?;
        Ok((server, client))
    }

    fn run<T>(
        &self,
        key: &str,
        operation: impl FnOnce(&memcache::Client, &str) -> Result<T, memcache::MemcacheError>,
    ) -> Result<T, StoreError> {
        let (server, client) = self.route(key)?;
        server.finish(operation(&client, key), self.settings.operation_timeout)
    }

    /// Runs blocking memcached I/O off the async executor's threads when there is one.
    fn run_async<T: Send + 'static>(
        &self,
        key: Result<String, StoreError>,
        operation: impl FnOnce(&memcache::Client, &str) -> Result<T, memcache::MemcacheError>
            + Send
            + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send {
        let prepared = key.and_then(|key| Ok((self.route(&key)?, key)));
        let timeout = self.settings.operation_timeout;
        async move {
            let ((server, client), key) = prepared?;
            off_the_executor(move || server.finish(operation(&client, &key), timeout)).await
        }
    }
}

impl Server {
    fn client(&self, settings: &Settings) -> Result<Arc<memcache::Client>, StoreError> {
        self.backoff.check(&self.address)?;
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = client.as_ref() {
            return Ok(Arc::clone(client));
        }
        let url = format!(
            "memcache://{}?timeout={}&tcp_nodelay=true",
            self.address,
            settings.operation_timeout.as_secs_f64()
        );
        // The pool is built here rather than by `memcache::ClientBuilder`, which cannot
        // turn off r2d2's check on checkout: that sends a `version` command before every
        // operation, doubling each call's round trips. A broken connection still shows
        // as an I/O error, after which `finish` drops the pool and the next call
        // reconnects.
        let connected = memcache::Url::parse(&url)
            .map_err(|error| memcache::MemcacheError::BadURL(error.to_string()))
            .and_then(|url| {
                r2d2::Pool::builder()
                    .max_size(settings.pool_size)
                    .min_idle(Some(1))
                    // A checkout may wait for a new connection or for another
                    // caller's operation to finish with one: both are bounded.
                    .connection_timeout(settings.connect_timeout + settings.operation_timeout)
                    .test_on_check_out(false)
                    .build(memcache::ConnectionManager::new(url))
                    .map_err(memcache::MemcacheError::PoolError)
            })
            .and_then(memcache::Client::with_pool)
            .map(Arc::new);
        match connected {
            Ok(connected) => {
                *client = Some(Arc::clone(&connected));
                Ok(connected)
            }
            Err(error) => {
                self.backoff.trip();
                Err(StoreError::Unavailable(format!(
                    "memcached server {}: {error}",
                    self.address
                )))
            }
        }
    }

    /// Writes `batch.commands` at once and reads one reply line per command: a round
    /// trip for the whole batch.
    fn pipelined(&self, batch: &Batch, settings: &Settings) -> Result<Vec<String>, StoreError> {
        self.with_text_connection(settings, |connection| {
            connection.get_mut().write_all(&batch.commands)?;
            (0..batch.count)
                .map(|_| read_reply_line(connection))
                .collect()
        })
    }

    /// One text-protocol `get` of every key: `VALUE <key> <flags> <bytes>` blocks up to
    /// `END`. The `memcache` crate's binary multi-get took 20x longer here for 100 keys
    /// (BENCHMARKS.md, "Backends").
    fn text_multi_get(
        &self,
        keys: &[String],
        settings: &Settings,
    ) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut command = b"get".to_vec();
        for key in keys {
            command.push(b' ');
            command.extend_from_slice(key.as_bytes());
        }
        command.extend_from_slice(b"\r\n");
        self.with_text_connection(settings, |connection| {
            connection.get_mut().write_all(&command)?;
            let mut found = HashMap::with_capacity(keys.len());
            loop {
                let line = read_reply_line(connection)?;
                if line == "END" {
                    return Ok(found);
                }
                let malformed =
                    || std::io::Error::new(std::io::ErrorKind::InvalidData, line.clone());
                let mut fields = line.split(' ');
                let (Some("VALUE"), Some(key), Some(_flags), Some(length)) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Err(malformed());
                };
                let length: usize = length.parse().map_err(|_| malformed())?;
                let mut data = vec![0; length + 2];
                std::io::Read::read_exact(connection, &mut data)?;
                data.truncate(length);
                found.insert(key.to_owned(), data);
            }
        })
    }

    /// Runs `exchange` on this server's text-protocol connection, opening it first if
    /// needed. A failure drops the connection (it may be half-read).
    fn with_text_connection<T>(
        &self,
        settings: &Settings,
        exchange: impl FnOnce(&mut BufReader<TcpStream>) -> std::io::Result<T>,
    ) -> Result<T, StoreError> {
        self.backoff.check(&self.address)?;
        let mut slot = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let stream = self.connect_text(settings).map_err(|error| {
                self.backoff.trip();
                StoreError::Unavailable(format!("memcached server {}: {error}", self.address))
            })?;
            *slot = Some(BufReader::new(stream));
        }
        exchange(slot.as_mut().expect("connected above")).map_err(|error| {
            *slot = None;
            to_store_error(
                memcache::MemcacheError::IOError(error),
                settings.operation_timeout,
            )
        })
    }

    fn connect_text(&self, settings: &Settings) -> std::io::Result<TcpStream> {
        let mut last_error = None;
        for address in self.address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&address, settings.connect_timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(settings.operation_timeout))?;
                    stream.set_write_timeout(Some(settings.operation_timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    /// Maps the client's error, forgetting the pool after a failure so that the next
    /// call reconnects instead of reusing a half-read connection.
    fn finish<T>(
        &self,
        result: Result<T, memcache::MemcacheError>,
        timeout: Duration,
    ) -> Result<T, StoreError> {
        result.map_err(|error| {
            *self.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
            to_store_error(error, timeout)
        })
    }
}

fn to_store_error(error: memcache::MemcacheError, timeout: Duration) -> StoreError {
    match error {
        memcache::MemcacheError::IOError(io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.kind() == std::io::ErrorKind::TimedOut =>
        {
            StoreError::Timeout(timeout)
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Memcached's expiry field: seconds (at least 1) up to 30 days, a Unix time beyond.
fn expiry_field(ttl: Option<Duration>) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    let seconds = ttl.as_millis().div_ceil(1000).max(1) as u64;
    if seconds <= MAX_RELATIVE_EXPIRY {
        return seconds as u32;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(now + seconds).unwrap_or(u32::MAX)
}

impl<C: Codec> MemcachedStoreBuilder<C> {
    codec::key_setters!();

    /// How values are written (default [`MessagePack`]); keys are always MessagePack.
    ///
    /// ```
    /// use cachemacro_runtime::{MemcachedStore, MessagePack};
    ///
    /// let store: MemcachedStore<MessagePack> =
    ///     MemcachedStore::builder(["127.0.0.1:11211"]).codec(MessagePack).build();
    /// # let _ = store;
    /// ```
    pub fn codec<D: Codec>(self, codec: D) -> MemcachedStoreBuilder<D> {
        MemcachedStoreBuilder {
            codec,
            servers: self.servers,
            keys: self.keys,
            settings: self.settings,
        }
    }

    codec::timeout_setters!(settings);

    /// How often the namespace version is re-read, i.e. how soon another process's
    /// `clear` is seen.
    pub fn version_refresh(mut self, every: Duration) -> Self {
        self.settings.version_refresh = every;
        self
    }

    /// Connections kept per server.
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.settings.pool_size = connections.max(1);
        self
    }

    /// The store. Nothing is connected until a key routes to a server.
    pub fn build(self) -> MemcachedStore<C> {
        MemcachedStore {
            codec: self.codec,
            ring: KetamaRing::new(&self.servers),
            servers: self
                .servers
                .into_iter()
                .map(|address| {
                    Arc::new(Server {
                        address,
                        client: Mutex::new(None),
                        pipeline: Mutex::new(None),
                        backoff: Backoff::new(self.settings.retry_after),
                    })
                })
                .collect(),
            keys: self.keys.into_key_space(),
            settings: self.settings,
            version: Mutex::new(None),
        }
    }
}

impl<K, V, C: Codec> Store<K, V> for MemcachedStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = self.encode_key(key)?;
        decode_found(
            &self.codec,
            self.run(&key, |client, key| client.get::<Vec<u8>>(key))?,
        )
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        let key = self.encode_key(&key)?;
        let value = encode_value(&self.codec, &value)?;
        self.run(&key, |client, key| {
            client.set(key, value.as_slice(), expiry_field(ttl))
        })
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        self.run(&key, |client, key| client.delete(key))
    }

    /// Memcached cannot list keys, and `flush_all` would wipe other applications'
    /// entries too, so a namespace is cleared by bumping its version, which every key
    /// contains: the old entries are never read again and age out with their ttl.
    /// Other processes see the bump within `version_refresh`.
    fn clear(&self) -> Result<(), StoreError> {
        let key = self.version_key();
        let version = self.run(&key, |client, key| client.increment(key, 1))?;
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some((version, Instant::now()));
        Ok(())
    }

    fn with_namespace(mut self, namespace: &'static str) -> Self {
        self.keys.adopt_namespace(namespace);
        self
    }

    fn get_async(&self, key: &K) -> impl Future<Output = Result<Option<V>, StoreError>> + Send
    where
        V: Send,
    {
        let fetched = self.run_async(self.encode_key(key), |client, key| {
            client.get::<Vec<u8>>(key)
        });
        async move { decode_found(&self.codec, fetched.await?) }
    }

    fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (key, value) = match (self.encode_key(&key), encode_value(&self.codec, &value)) {
            (Ok(key), Ok(value)) => (Ok(key), value),
            (Err(error), _) | (_, Err(error)) => (Err(error), Vec::new()),
        };
        self.run_async(key, move |client, key| {
            client.set(key, value.as_slice(), expiry_field(ttl))
        })
    }

    fn remove_async(&self, key: &K) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.run_async(self.encode_key(key), |client, key| client.delete(key))
    }
}

impl<C> std::fmt::Debug for MemcachedStore<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MemcachedStore")
            .field(
                "servers",
                &self
                    .servers
                    .iter()
                    .map(|s| s.address.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("keys", &self.keys.as_str())
            .finish_non_exhaustive()
    }
}

fn is_command_error(error: &memcache::MemcacheError, expected: memcache::CommandError) -> bool {
    matches!(error, memcache::MemcacheError::CommandError(found) if *found == expected)
}

/// The server-side steps of the low-level API, shared by the sync path (run on the
/// caller's thread) and the async one (run on tokio's blocking pool).
mod steps {
    use memcache::{Client, CommandError, MemcacheError};

    use super::is_command_error;

    pub(super) fn add(
        client: &Client,
        key: &str,
        value: &[u8],
        expiry: u32,
    ) -> Result<bool, MemcacheError> {
        match client.add(key, value, expiry) {
            Ok(()) => Ok(true),
            Err(error) if is_command_error(&error, CommandError::KeyExists) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Memcached counters are unsigned: a decrement stops at 0.
    pub(super) fn count(client: &Client, key: &str, delta: i64) -> Result<u64, MemcacheError> {
        let amount = delta.unsigned_abs();
        let step = || {
            if delta >= 0 {
                client.increment(key, amount)
            } else {
                client.decrement(key, amount)
            }
        };
        // Creating a missing counter is an `add` inside the server: when several clients
        // create it at once, all but one get "not stored" (status 5), and their increment
        // simply has to be sent again, now that the counter exists.
        for _ in 0..8 {
            match step() {
                Err(error) if is_command_error(&error, CommandError::Unknown(5)) => continue,
                // The binary protocol creates a missing counter at its initial value (0)
                // without adding: a positive delta can only yield 0 on creation, so add
                // it now.
                Ok(0) if delta > 0 => return client.increment(key, amount),
                other => return other,
            }
        }
        step()
    }

    pub(super) type Gets = Option<(Vec<u8>, u32, Option<u64>)>;

    pub(super) fn gets(client: &Client, key: &str) -> Result<Gets, MemcacheError> {
        client.get(key)
    }
}

impl<C: Codec> MemcachedStore<C> {
    fn read_counter(counted: u64) -> Result<i64, StoreError> {
        i64::try_from(counted)
            .map_err(|_| StoreError::Corrupt(format!("counter {counted} exceeds i64")))
    }

    fn read_gets<V: DeserializeOwned>(
        &self,
        found: steps::Gets,
    ) -> Result<Option<(V, CasToken)>, StoreError> {
        match found {
            Some((bytes, _flags, Some(unique))) => Ok(Some((
                codec::decode_value(&self.codec, &bytes)?,
                CasToken(CasTokenRepr::Version(unique)),
            ))),
            Some((_, _, None)) => Err(StoreError::Unavailable(
                "memcached returned no CAS id".to_owned(),
            )),
            None => Ok(None),
        }
    }

    /// The encoded keys, and for each server the keys it holds (at most
    /// [`PIPELINE_BATCH`] a group): one multi-get each.
    fn batches<K: Serialize>(&self, keys: &[K]) -> Result<(Vec<String>, KeyGroups), StoreError> {
        let encoded = keys
            .iter()
            .map(|key| self.encode_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        let groups = self
            .by_server(encoded.iter().map(|key| (key.clone(), ())))
            .into_iter()
            .map(|(server, group)| (server, group.into_iter().map(|(key, ())| key).collect()))
            .collect();
        Ok((encoded, groups))
    }

    /// `items` keyed by encoded key, grouped by the server holding each key and cut into
    /// groups of at most [`PIPELINE_BATCH`]: the unit of every batched call.
    fn by_server<T>(
        &self,
        items: impl IntoIterator<Item = (String, T)>,
    ) -> ServerGroups<(String, T)> {
        let mut open: Vec<Vec<(String, T)>> = (0..self.servers.len()).map(|_| Vec::new()).collect();
        let mut groups = Vec::new();
        for (key, item) in items {
            let Some(index) = self.ring.server_for(key.as_bytes()) else {
                continue;
            };
            open[index].push((key, item));
            if open[index].len() == PIPELINE_BATCH {
                groups.push((
                    Arc::clone(&self.servers[index]),
                    std::mem::take(&mut open[index]),
                ));
            }
        }
        for (index, group) in open.into_iter().enumerate() {
            if !group.is_empty() {
                groups.push((Arc::clone(&self.servers[index]), group));
            }
        }
        groups
    }

    fn read_batches<V: DeserializeOwned>(
        &self,
        encoded: &[String],
        mut found: HashMap<String, Vec<u8>>,
    ) -> Result<Vec<Option<V>>, StoreError> {
        encoded
            .iter()
            .map(|key| decode_found(&self.codec, found.remove(key)))
            .collect()
    }
}

impl<C: Codec> MemcachedStore<C> {
    /// Text-protocol commands, grouped as [`by_server`](Self::by_server) groups them;
    /// `command(key, item, out)` writes one command.
    fn write_batches<T>(
        &self,
        items: impl IntoIterator<Item = (String, T)>,
        mut command: impl FnMut(&str, T, &mut Vec<u8>),
    ) -> Vec<Batch> {
        self.by_server(items)
            .into_iter()
            .map(|(server, group)| {
                let count = group.len();
                let mut commands = Vec::new();
                for (key, item) in group {
                    command(&key, item, &mut commands);
                }
                Batch {
                    server,
                    commands,
                    count,
                }
            })
            .collect()
    }

    fn set_batches<K: Serialize, V: Serialize>(
        &self,
        entries: &[(K, V)],
        ttl: Option<Duration>,
    ) -> Result<Vec<Batch>, StoreError> {
        let expiry = expiry_field(ttl);
        let encoded = entries
            .iter()
            .map(|(key, value)| Ok((self.encode_key(key)?, encode_value(&self.codec, value)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(self.write_batches(encoded, |key, value, out| {
            let _ = write!(Text(out), "set {key} 0 {expiry} {}\r\n", value.len());
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
        }))
    }

    fn delete_batches<K: Serialize>(&self, keys: &[K]) -> Result<Vec<Batch>, StoreError> {
        let encoded = keys
            .iter()
            .map(|key| Ok((self.encode_key(key)?, ())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(self.write_batches(encoded, |key, (), out| {
            let _ = write!(Text(out), "delete {key}\r\n");
        }))
    }
}

/// One reply line without its `\r\n`; a closed connection is an error.
fn read_reply_line(connection: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    if connection.read_line(&mut line)? == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    }
    line.truncate(line.trim_end().len());
    Ok(line)
}

/// `write!` into a byte buffer.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// Sends every batch and checks each reply is one of `expected`; returns how many were
/// the first of them (`STORED`, `DELETED`).
fn send_batches(
    batches: &[Batch],
    settings: &Settings,
    expected: &[&str],
) -> Result<usize, StoreError> {
    let mut first = 0;
    for batch in batches {
        for reply in batch.server.pipelined(batch, settings)? {
            match expected.iter().position(|wanted| *wanted == reply) {
                Some(0) => first += 1,
                Some(_) => {}
                None => {
                    return Err(StoreError::Unavailable(format!(
                        "memcached server {} answered {reply:?} to a batched write",
                        batch.server.address
                    )))
                }
            }
        }
    }
    Ok(first)
}

/// Runs `send` on tokio's blocking pool when there is a runtime, as `run_async` does.
async fn off_the_executor<T: Send + 'static>(
    send: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(send)
            .await
            .map_err(|error| StoreError::Other(Box::new(error)))?,
        Err(_) => send(),
    }
}

/// Every group's multi-get, merged.
fn multi_get_all(
    groups: &[(Arc<Server>, Vec<String>)],
    settings: &Settings,
) -> Result<HashMap<String, Vec<u8>>, StoreError> {
    let mut found = HashMap::new();
    for (server, keys) in groups {
        found.extend(server.text_multi_get(keys, settings)?);
    }
    Ok(found)
}

impl<K, V, C: Codec> CacheApi<K, V> for MemcachedStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let key = self.encode_key(&key)?;
        let value = encode_value(&self.codec, &value)?;
        self.run(&key, |client, key| {
            steps::add(client, key, &value, expiry_field(ttl))
        })
    }

    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        self.run(&key, |client, key| client.touch(key, expiry_field(ttl)))
    }

    /// Memcached does not tell an entry's remaining time to live, so the moved entry
    /// never expires (Django resets it to the default timeout likewise).
    fn incr_version(&self, key: &K, delta: i64) -> Result<Option<u64>, StoreError> {
        let version = self.keys.shifted_version(delta)?;
        let old = self.encode_key(key)?;
        let new = self.encode_key_at(key, &self.keys.at_version(version))?;
        let Some(value) = self.run(&old, |client, key| client.get::<Vec<u8>>(key))? else {
            return Ok(None);
        };
        self.run(&new, |client, key| client.set(key, value.as_slice(), 0))?;
        self.run(&old, |client, key| client.delete(key))?;
        Ok(Some(version))
    }

    /// The text protocol's `incr`/`decr`, which answer `NOT_FOUND` for a missing key
    /// where the binary protocol's create it.
    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError> {
        let key = self.encode_key(key)?;
        let server = self.server_of(&key)?;
        let verb = if delta >= 0 { "incr" } else { "decr" };
        let command = format!("{verb} {key} {}\r\n", delta.unsigned_abs());
        let reply = server.with_text_connection(&self.settings, |connection| {
            connection.get_mut().write_all(command.as_bytes())?;
            read_reply_line(connection)
        })?;
        match reply.as_str() {
            "NOT_FOUND" => Ok(None),
            counted => match counted.parse::<u64>() {
                Ok(counted) => Self::read_counter(counted).map(Some),
                Err(_) => Err(StoreError::Corrupt(format!(
                    "memcached answered {counted:?} to {verb}: not a counter"
                ))),
            },
        }
    }

    /// Memcached counters are unsigned: a decrement stops at 0.
    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        let key = self.encode_key(key)?;
        Self::read_counter(self.run(&key, |client, key| steps::count(client, key, delta))?)
    }

    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError> {
        let key = self.encode_key(key)?;
        self.read_gets(self.run(&key, steps::gets)?)
    }

    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        match &token.0 {
            CasTokenRepr::Version(unique) => {
                let key = self.encode_key(&key)?;
                let value = encode_value(&self.codec, &value)?;
                self.run(&key, |client, key| {
                    client.cas(key, value.as_slice(), expiry_field(ttl), *unique)
                })
            }
            CasTokenRepr::Bytes(bytes) if bytes.is_empty() => self.add(key, value, ttl),
            CasTokenRepr::Bytes(_) | CasTokenRepr::Value(_) => Err(CasToken::foreign()),
        }
    }

    /// One multi-get per server holding any of the keys (and per 512 keys).
    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError> {
        let (encoded, groups) = self.batches(keys)?;
        self.read_batches(&encoded, multi_get_all(&groups, &self.settings)?)
    }

    fn add_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let value = encode_value(&self.codec, &value);
        let key = self.encode_key(&key);
        async move {
            let value = value?;
            self.run_async(key, move |client, key| {
                steps::add(client, key, &value, expiry_field(ttl))
            })
            .await
        }
    }

    fn touch_async(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.run_async(self.encode_key(key), move |client, key| {
            client.touch(key, expiry_field(ttl))
        })
    }

    fn incr_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let counted = self.run_async(self.encode_key(key), move |client, key| {
            steps::count(client, key, delta)
        });
        async move { Self::read_counter(counted.await?) }
    }

    fn gets_async(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Option<(V, CasToken)>, StoreError>> + Send
    where
        V: Send,
    {
        let found = self.run_async(self.encode_key(key), steps::gets);
        async move { self.read_gets(found.await?) }
    }

    fn cas_async(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let token = token.0.clone();
        async move {
            match token {
                CasTokenRepr::Version(unique) => {
                    let value = encode_value(&self.codec, &value)?;
                    self.run_async(self.encode_key(&key), move |client, key| {
                        client.cas(key, value.as_slice(), expiry_field(ttl), unique)
                    })
                    .await
                }
                CasTokenRepr::Bytes(bytes) if bytes.is_empty() => {
                    self.add_async(key, value, ttl).await
                }
                CasTokenRepr::Bytes(_) | CasTokenRepr::Value(_) => Err(CasToken::foreign()),
            }
        }
    }

    fn get_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<Option<V>>, StoreError>> + Send
    where
        V: Send,
    {
        let planned = self.batches(keys);
        let settings = self.settings;
        async move {
            let (encoded, groups) = planned?;
            let found = off_the_executor(move || multi_get_all(&groups, &settings)).await?;
            self.read_batches(&encoded, found)
        }
    }

    /// One pipelined write per server (and per 512 entries).
    fn set_many(&self, entries: Vec<(K, V)>, ttl: Option<Duration>) -> Result<(), StoreError> {
        let batches = self.set_batches(&entries, ttl)?;
        send_batches(&batches, &self.settings, &["STORED"]).map(drop)
    }

    /// One pipelined write per server (and per 512 keys).
    fn delete_many(&self, keys: &[K]) -> Result<usize, StoreError> {
        let batches = self.delete_batches(keys)?;
        send_batches(&batches, &self.settings, &["DELETED", "NOT_FOUND"])
    }

    fn set_many_async(
        &self,
        entries: Vec<(K, V)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let batches = self.set_batches(&entries, ttl);
        let settings = self.settings;
        async move {
            let batches = batches?;
            off_the_executor(move || send_batches(&batches, &settings, &["STORED"]).map(drop)).await
        }
    }

    fn delete_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let batches = self.delete_batches(keys);
        let settings = self.settings;
        async move {
            let batches = batches?;
            off_the_executor(move || send_batches(&batches, &settings, &["DELETED", "NOT_FOUND"]))
                .await
        }
    }
}
