//! How Redis commands reach the server: blocking connections for sync callers, one
//! multiplexed connection for async callers, behind one [`Transport`] so that every
//! operation is written once.
//!
//! The blocking transport's futures finish on their first poll (the I/O happens inside
//! it), so sync callers drive the same `async` code with
//! [`complete_now`](crate::blocking::complete_now) and never touch a runtime.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, TryLockError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_async::ClusterConnection as AsyncClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, Connection, ConnectionLike, ErrorKind, FromRedisValue, RedisError,
    RedisResult, ServerErrorKind,
};

use super::sentinel::Sentinels;
use crate::StoreError;

/// What one call sends: one command, or a pipeline of them.
pub(super) enum Request {
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

/// A connection to send requests on, blocking or async.
pub(super) trait Transport: Send {
    /// Sends `request` and reads its answer.
    fn send<T: FromRedisValue + Send>(
        &mut self,
        request: Request,
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

/// Where the keys live: one server, a Redis Cluster that shards them by hash slot, or
/// whichever server the sentinels name master when a connection is opened.
pub(super) enum Server {
    Single(redis::Client),
    Cluster {
        client: Box<ClusterClient>,
        /// The nodes named by the user, for `clear`, which must visit each of them.
        nodes: Vec<redis::Client>,
    },
    Sentinel(Box<Sentinels>),
}

/// The connections of one store, shared by its clones.
pub(super) struct Connections {
    pub(super) server: Server,
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    /// Connections for sync callers, each opened on first need: a blocking connection
    /// serves one call at a time, so threads that call at once take different ones.
    blocking: Box<[Mutex<BlockingSlot>]>,
    next_blocking: AtomicUsize,
    /// Blocking connections to the one server that broke so far. When one breaks (the
    /// server restarted, or a failover made it a replica) the others opened before most
    /// likely did too: they are replaced before their next use instead of each failing
    /// a call. Not counted on a cluster, whose connections reach different nodes.
    blocking_breaks: AtomicU64,
    /// The async callers' connection, with the number of the connect that opened it, so
    /// that a caller who saw it break drops that one and not a newer one.
    multiplexed: RwLock<Option<(u64, AsyncConnection)>>,
    connects: AtomicU64,
}

/// A place in the blocking pool: empty until first needed (or after its connection broke),
/// else the connection with the value of `blocking_breaks` when it was opened.
type BlockingSlot = Option<(u64, BlockingConnection)>;

pub(super) enum BlockingConnection {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

/// Every kind multiplexes and is cheap to clone. The first two reconnect by themselves;
/// a master's connection must not, since reconnecting to the same address after a
/// failover would reach the old master: it is dropped when it breaks
/// ([`Connections::forget_multiplexed`]) and the next caller asks the sentinels again.
#[derive(Clone)]
pub(super) enum AsyncConnection {
    Single(ConnectionManager),
    Cluster(AsyncClusterConnection),
    SentinelMaster(MultiplexedConnection),
}

/// The blocking connections as a transport: each request takes a connection from the
/// pool for as long as it runs.
pub(super) struct Blocking<'a>(pub(super) &'a Connections);

impl Connections {
    pub(super) fn new(
        server: Server,
        connect_timeout: Duration,
        operation_timeout: Duration,
        pool_size: usize,
    ) -> Connections {
        Connections {
            server,
            connect_timeout,
            operation_timeout,
            blocking: (0..pool_size.max(1)).map(|_| Mutex::new(None)).collect(),
            next_blocking: AtomicUsize::new(0),
            blocking_breaks: AtomicU64::new(0),
            multiplexed: RwLock::new(None),
            connects: AtomicU64::new(0),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.server, Server::Cluster { .. })
    }

    /// Before an operation on a store through Sentinel: if the sentinels name another
    /// master than the one the connections were opened to, drops them all (blocking and
    /// multiplexed), so that this operation connects to the new master.
    fn follow_the_master(&self) {
        let Server::Sentinel(sentinels) = &self.server else {
            return;
        };
        if sentinels.master_moved() {
            tracing::info!(
                master = %sentinels.master_name,
                "the sentinels name another master; reconnecting"
            );
            self.blocking_breaks.fetch_add(1, Ordering::AcqRel);
            *self.multiplexed.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The first idle connection slot, or, when every one is busy, a turn on one of
    /// them. Trying in order keeps connections unopened until concurrency needs them.
    fn blocking_slot(&self) -> MutexGuard<'_, BlockingSlot> {
        for slot in self.blocking.iter() {
            match slot.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let turn = self.next_blocking.fetch_add(1, Ordering::Relaxed);
        self.blocking[turn % self.blocking.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A new blocking connection; through Sentinel, to the master they name now.
    pub(super) fn connect_blocking(&self) -> RedisResult<BlockingConnection> {
        let master;
        let client = match &self.server {
            Server::Single(client) => client,
            Server::Sentinel(sentinels) => {
                master = sentinels.master_blocking()?;
                &master
            }
            Server::Cluster { client, .. } => {
                return Ok(BlockingConnection::Cluster(Box::new(
                    client.get_connection()?,
                )))
            }
        };
        let connection = client.get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.operation_timeout))?;
        connection.set_write_timeout(Some(self.operation_timeout))?;
        Ok(BlockingConnection::Single(connection))
    }

    /// The multiplexed connection, connecting first if needed, and the number of the
    /// connect that opened it (for [`forget_multiplexed`](Self::forget_multiplexed));
    /// connecting is bounded by twice the connect timeout, plus the sentinels' lookup.
    pub(super) async fn multiplexed(&self) -> Result<(u64, AsyncConnection), StoreError> {
        self.follow_the_master();
        if let Some(connection) = self
            .multiplexed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let limit = match &self.server {
            Server::Sentinel(sentinels) => self.connect_timeout * 2 + sentinels.budget(),
            _ => self.connect_timeout * 2,
        };
        let connection = match tokio::time::timeout(limit, self.connect_async()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(to_store_error(error, self.operation_timeout)),
            Err(_) => return Err(StoreError::Timeout(self.connect_timeout)),
        };
        let opened = (self.connects.fetch_add(1, Ordering::Relaxed), connection);
        *self.multiplexed.write().unwrap_or_else(|e| e.into_inner()) = Some(opened.clone());
        Ok(opened)
    }

    /// Drops the multiplexed connection opened by connect number `opened` after it broke
    /// (see [`breaks_connection`]) or timed out, if it is one that does not reconnect by
    /// itself: the next caller opens a new one, through the sentinels to the current
    /// master.
    pub(super) fn forget_multiplexed(&self, opened: u64) {
        let mut current = self.multiplexed.write().unwrap_or_else(|e| e.into_inner());
        if matches!(&*current, Some((number, AsyncConnection::SentinelMaster(_))) if *number == opened)
        {
            *current = None;
        }
    }

    async fn connect_async(&self) -> RedisResult<AsyncConnection> {
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
            Server::Sentinel(sentinels) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.operation_timeout));
                let master = sentinels.master().await?;
                Ok(AsyncConnection::SentinelMaster(
                    master
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
        }
    }
}

impl Transport for Blocking<'_> {
    async fn send<T: FromRedisValue + Send>(&mut self, request: Request) -> RedisResult<T> {
        let connections = self.0;
        connections.follow_the_master();
        let mut slot = connections.blocking_slot();
        let breaks = connections.blocking_breaks.load(Ordering::Acquire);
        if slot.as_ref().is_some_and(|(opened, _)| *opened < breaks) {
            *slot = None;
        }
        let connection: &mut dyn ConnectionLike = match &mut *slot {
            Some((_, BlockingConnection::Single(connection))) => connection,
            Some((_, BlockingConnection::Cluster(connection))) => &mut **connection,
            empty @ None => match empty.insert((breaks, connections.connect_blocking()?)) {
                (_, BlockingConnection::Single(connection)) => connection,
                (_, BlockingConnection::Cluster(connection)) => &mut **connection,
            },
        };
        let answer = match &request {
            Request::Command(command) => command.query(connection),
            Request::Pipeline(pipeline) => pipeline.query(connection),
        };
        if answer.as_ref().is_err_and(breaks_connection) {
            *slot = None;
            if !connections.is_cluster() {
                connections.blocking_breaks.fetch_add(1, Ordering::AcqRel);
            }
        }
        answer
    }
}

impl Transport for AsyncConnection {
    async fn send<T: FromRedisValue + Send>(&mut self, request: Request) -> RedisResult<T> {
        match (self, &request) {
            (AsyncConnection::Single(connection), Request::Command(command)) => {
                command.query_async(connection).await
            }
            (AsyncConnection::Single(connection), Request::Pipeline(pipeline)) => {
                pipeline.query_async(connection).await
            }
            (AsyncConnection::Cluster(connection), Request::Command(command)) => {
                command.query_async(connection).await
            }
            (AsyncConnection::Cluster(connection), Request::Pipeline(pipeline)) => {
                pipeline.query_async(connection).await
            }
            (AsyncConnection::SentinelMaster(connection), Request::Command(command)) => {
                command.query_async(connection).await
            }
            (AsyncConnection::SentinelMaster(connection), Request::Pipeline(pipeline)) => {
                pipeline.query_async(connection).await
            }
        }
    }
}

/// Whether the connection that got `error` must not be used again: it may be half-read
/// after an I/O error or a timeout, and one answering `READONLY` reaches a replica (a
/// master demoted by a failover), where every write would fail until it is replaced by a
/// connection to the current master.
pub(super) fn breaks_connection(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// Redis' answer as a store error: timeouts and broken connections (a demoted master's
/// `READONLY` included) say the server is unwell; an answer about the value (an
/// overflowing or non-numeric counter, a key of another type) is about the caller's
/// input and must not mark the server down.
pub(super) fn to_store_error(error: RedisError, operation_timeout: Duration) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout(operation_timeout);
    }
    if breaks_connection(&error) || error.is_connection_refusal() {
        return StoreError::Unavailable(error.to_string());
    }
    let text = error.to_string();
    if text.contains("overflow") {
        StoreError::Overflow
    } else if text.contains("not an integer") || text.contains("WRONGTYPE") {
        StoreError::Corrupt(text)
    } else {
        StoreError::Unavailable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error redis-rs makes of `reply` as the server would send it.
    fn server_error(reply: &str) -> RedisError {
        let value = redis::parse_redis_value(format!("-{reply}\r\n").as_bytes()).unwrap();
        value.extract_error().unwrap_err()
    }

    #[test]
    fn a_demoted_master_s_readonly_breaks_the_connection_and_marks_the_server_down() {
        let readonly = server_error("READONLY You can't write against a read only replica.");
        assert!(breaks_connection(&readonly));
        assert!(matches!(
            to_store_error(readonly, Duration::from_millis(100)),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn an_answer_about_the_value_keeps_the_connection() {
        let wrong_type =
            server_error("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert!(!breaks_connection(&wrong_type));
        assert!(matches!(
            to_store_error(wrong_type, Duration::from_millis(100)),
            StoreError::Corrupt(_)
        ));
        let overflow = server_error("ERR increment or decrement would overflow");
        assert!(!breaks_connection(&overflow));
        assert!(matches!(
            to_store_error(overflow, Duration::from_millis(100)),
            StoreError::Overflow
        ));
    }
}
