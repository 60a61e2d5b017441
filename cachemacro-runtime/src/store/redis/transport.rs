//! How Redis commands reach the server: blocking connections for sync callers, one
//! multiplexed connection for async callers, behind one [`Transport`] so that every
//! operation is written once.
//!
//! The blocking transport's futures finish on their first poll (the I/O happens inside
//! it), so sync callers drive the same `async` code with
//! [`complete_now`](crate::blocking::complete_now) and never touch a runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, TryLockError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_async::ClusterConnection as AsyncClusterConnection;
use redis::{Cmd, Connection, ConnectionLike, FromRedisValue, RedisError, RedisResult};

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

/// Where the keys live: one server, or a Redis Cluster that shards them by hash slot.
pub(super) enum Server {
    Single(redis::Client),
    Cluster {
        client: Box<ClusterClient>,
        /// The nodes named by the user, for `clear`, which must visit each of them.
        nodes: Vec<redis::Client>,
    },
}

/// The connections of one store, shared by its clones.
pub(super) struct Connections {
    pub(super) server: Server,
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    /// Connections for sync callers, each opened on first need: a blocking connection
    /// serves one call at a time, so threads that call at once take different ones.
    blocking: Box<[Mutex<Option<BlockingConnection>>]>,
    next_blocking: AtomicUsize,
    multiplexed: RwLock<Option<AsyncConnection>>,
}

pub(super) enum BlockingConnection {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

/// Both kinds multiplex and reconnect by themselves, and are cheap to clone.
#[derive(Clone)]
pub(super) enum AsyncConnection {
    Single(ConnectionManager),
    Cluster(AsyncClusterConnection),
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
            multiplexed: RwLock::new(None),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.server, Server::Cluster { .. })
    }

    /// The first idle connection slot, or, when every one is busy, a turn on one of
    /// them. Trying in order keeps connections unopened until concurrency needs them.
    fn blocking_slot(&self) -> MutexGuard<'_, Option<BlockingConnection>> {
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

    pub(super) fn connect_blocking(&self) -> RedisResult<BlockingConnection> {
        match &self.server {
            Server::Single(client) => {
                let connection = client.get_connection_with_timeout(self.connect_timeout)?;
                connection.set_read_timeout(Some(self.operation_timeout))?;
                connection.set_write_timeout(Some(self.operation_timeout))?;
                Ok(BlockingConnection::Single(connection))
            }
            Server::Cluster { client, .. } => Ok(BlockingConnection::Cluster(Box::new(
                client.get_connection()?,
            ))),
        }
    }

    /// The multiplexed connection, connecting first if needed; bounded by the connect
    /// timeout.
    pub(super) async fn multiplexed(&self) -> Result<AsyncConnection, StoreError> {
        if let Some(connection) = self
            .multiplexed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let connection =
            match tokio::time::timeout(self.connect_timeout * 2, self.connect_async()).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => return Err(to_store_error(error, self.operation_timeout)),
                Err(_) => return Err(StoreError::Timeout(self.connect_timeout)),
            };
        *self.multiplexed.write().unwrap_or_else(|e| e.into_inner()) = Some(connection.clone());
        Ok(connection)
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
        }
    }
}

impl Transport for Blocking<'_> {
    async fn send<T: FromRedisValue + Send>(&mut self, request: Request) -> RedisResult<T> {
        let mut slot = self.0.blocking_slot();
        let connection: &mut dyn ConnectionLike = match &mut *slot {
            Some(BlockingConnection::Single(connection)) => connection,
            Some(BlockingConnection::Cluster(connection)) => &mut **connection,
            empty @ None => match empty.insert(self.0.connect_blocking()?) {
                BlockingConnection::Single(connection) => connection,
                BlockingConnection::Cluster(connection) => &mut **connection,
            },
        };
        let answer = match &request {
            Request::Command(command) => command.query(connection),
            Request::Pipeline(pipeline) => pipeline.query(connection),
        };
        // The connection may be half-read after an I/O error or a timeout: drop it and
        // start clean next time.
        if let Err(error) = &answer {
            if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
                *slot = None;
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
        }
    }
}

/// Redis' answer as a store error: timeouts and broken connections say the server is
/// unwell; an answer about the value (an overflowing or non-numeric counter, a key of
/// another type) is about the caller's input and must not mark the server down.
pub(super) fn to_store_error(error: RedisError, operation_timeout: Duration) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout(operation_timeout);
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
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
