//! The engine under [`Postgres`](super::Postgres): the connection pool (whose connections
//! live on the backend's own runtime), the table's creation on first use, culling, and
//! each [`Op`] as one statement.
//!
//! Everything here runs on the backend's runtime and owns what it needs (`Arc<Engine>`),
//! as a task there must.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::schema::{run_migration, TableName};
use super::statements::{Statements, CULL_BATCH};
use crate::store::api::CasToken;
use crate::store::encoded::backend::{Op, Reply};
use crate::store::{StoreError, StoreStats};

/// What a [`Postgres`](super::Postgres) backend was built with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    pub(super) pool_size: u32,
    pub(super) max_entries: Option<u64>,
    pub(super) cull_frequency: u64,
    pub(super) cull_every: u64,
    pub(super) create_table: bool,
}

/// One table on one database, shared by every clone of a backend.
pub(super) struct Engine {
    pub(super) connect_options: PgConnectOptions,
    pub(super) table: TableName,
    pub(super) settings: Settings,
    statements: Statements,
    /// Created on first use, from the backend's runtime: the pool spawns its connection
    /// tasks on the runtime it is created from.
    pool: OnceLock<PgPool>,
    /// Whether the table was created (`create_table`); cleared when a statement finds it
    /// missing, as after a `DROP TABLE`, so that the next call creates it again.
    table_ready: AtomicBool,
    table_creation: tokio::sync::Mutex<()>,
    writes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

impl Engine {
    pub(super) fn new(
        connect_options: PgConnectOptions,
        table: TableName,
        settings: Settings,
    ) -> Engine {
        Engine {
            connect_options,
            statements: Statements::new(&table),
            table,
            settings,
            pool: OnceLock::new(),
            table_ready: AtomicBool::new(false),
            table_creation: tokio::sync::Mutex::new(()),
            writes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
        }
    }

    /// The pool, created on the first call; must be called from the backend's runtime.
    pub(super) fn pool(&self) -> &PgPool {
        self.pool.get_or_init(|| {
            PgPoolOptions::new()
                .max_connections(self.settings.pool_size)
                .acquire_timeout(self.settings.connect_timeout)
                // The default pings every connection before handing it out: a second
                // round trip per call. A dead connection shows as an I/O error instead,
                // and the pool drops it.
                .test_before_acquire(false)
                .connect_lazy_with(self.connect_options.clone())
        })
    }

    /// Expired rows deleted by culls and rows culled over `max_entries`, by this store.
    pub(super) fn stats(&self) -> StoreStats {
        StoreStats::new(
            0,
            self.evictions.load(Ordering::Relaxed),
            self.expirations.load(Ordering::Relaxed),
        )
    }

    /// Runs `op`: a connection within the connect timeout, the table created first if
    /// asked to, then the statement within the operation timeout. Every `cull_every`
    /// writes also start a cull in the background.
    pub(super) async fn perform(self: Arc<Self>, op: Op) -> Result<Reply, StoreError> {
        if let Op::Cas { token, .. } = &op {
            if token.as_bytes().is_none() {
                return Err(CasToken::foreign());
            }
        }
        if adds_rows(&op) {
            let every = self.settings.cull_every;
            if every > 0 && self.writes.fetch_add(1, Ordering::Relaxed) % every == every - 1 {
                tokio::spawn(Arc::clone(&self).cull_in_background());
            }
        }
        let mut connection = self.connection().await?;
        self.within_operation_timeout(self.statement(&mut connection, op))
            .await
    }

    /// One batch of [`cull`](Engine::cull_on); the number of rows it deleted.
    pub(super) async fn cull(self: Arc<Self>) -> Result<u64, StoreError> {
        let mut connection = self.connection().await?;
        self.within_operation_timeout(self.cull_on(&mut connection))
            .await
    }

    async fn cull_in_background(self: Arc<Self>) {
        if let Err(error) = self.cull().await {
            tracing::debug!(%error, "culling the cache table failed");
        }
    }

    async fn within_operation_timeout<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let timeout = self.settings.operation_timeout;
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(StoreError::Timeout(timeout)))
    }

    /// A connection from the pool, after creating the table if the store is to create
    /// it and has not yet; each step within the connect timeout.
    async fn connection(&self) -> Result<PoolConnection<sqlx::Postgres>, StoreError> {
        let timeout = self.settings.connect_timeout;
        let mut connection = match tokio::time::timeout(timeout, self.pool().acquire()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(self.fault(error)),
            Err(_) => return Err(StoreError::Timeout(timeout)),
        };
        if self.settings.create_table && !self.table_ready.load(Ordering::Acquire) {
            let migration = async {
                let _creating = self.table_creation.lock().await;
                if !self.table_ready.load(Ordering::Acquire) {
                    run_migration(&mut connection, &self.table).await?;
                    self.table_ready.store(true, Ordering::Release);
                }
                Ok(())
            };
            match tokio::time::timeout(timeout, migration).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(self.fault(error)),
                Err(_) => return Err(StoreError::Timeout(timeout)),
            }
        }
        Ok(connection)
    }

    /// `op` as its one statement.
    async fn statement(&self, connection: &mut PgConnection, op: Op) -> Result<Reply, StoreError> {
        let sql = &self.statements;
        let fault = |error| self.fault(error);
        Ok(match op {
            Op::Get { key } => Reply::Value(
                query(&sql.get)
                    .bind(key)
                    .fetch_optional(&mut *connection)
                    .await
                    .and_then(|row| row.map(|row| row.try_get(0)).transpose())
                    .map_err(fault)?,
            ),
            Op::Gets { key } => {
                let found: Option<Vec<u8>> = query(&sql.get)
                    .bind(key)
                    .fetch_optional(&mut *connection)
                    .await
                    .and_then(|row| row.map(|row| row.try_get(0)).transpose())
                    .map_err(fault)?;
                // The token is the bytes read: `cas` compares them in its UPDATE.
                Reply::Versioned(found.map(|bytes| (bytes.clone(), CasToken::from_bytes(bytes))))
            }
            Op::GetMany { keys } => {
                let rows = query(&sql.get_many)
                    .bind(&keys)
                    .fetch_all(&mut *connection)
                    .await
                    .map_err(fault)?;
                let mut found = HashMap::with_capacity(rows.len());
                for row in rows {
                    let key: Vec<u8> = row.try_get(0).map_err(fault)?;
                    let value: Vec<u8> = row.try_get(1).map_err(fault)?;
                    found.insert(key, value);
                }
                Reply::Values(keys.iter().map(|key| found.get(key).cloned()).collect())
            }
            Op::Set { key, value, ttl } => {
                query(&sql.set)
                    .bind(key)
                    .bind(value)
                    .bind(ttl_millis(ttl))
                    .execute(&mut *connection)
                    .await
                    .map_err(fault)?;
                Reply::Done
            }
            Op::SetMany { entries, ttl } => {
                let (keys, values) = last_value_per_key(entries);
                query(&sql.set_many)
                    .bind(keys)
                    .bind(values)
                    .bind(ttl_millis(ttl))
                    .execute(&mut *connection)
                    .await
                    .map_err(fault)?;
                Reply::Done
            }
            Op::Add { key, value, ttl } => Reply::Applied(
                query(&sql.add)
                    .bind(key)
                    .bind(value)
                    .bind(ttl_millis(ttl))
                    .execute(&mut *connection)
                    .await
                    .map_err(fault)?
                    .rows_affected()
                    == 1,
            ),
            Op::Delete { key } => Reply::Applied(
                query(&sql.delete)
                    .bind(key)
                    .fetch_optional(&mut *connection)
                    .await
                    .and_then(|row| row.map(|row| row.try_get::<bool, _>(0)).transpose())
                    .map_err(fault)?
                    .unwrap_or(false),
            ),
            Op::DeleteMany { keys } => {
                let rows = query(&sql.delete_many)
                    .bind(keys)
                    .fetch_all(&mut *connection)
                    .await
                    .map_err(fault)?;
                let mut live = 0;
                for row in rows {
                    live += usize::from(row.try_get::<bool, _>(0).map_err(fault)?);
                }
                Reply::Count(live)
            }
            Op::Touch { key, ttl } => Reply::Applied(
                query(&sql.touch)
                    .bind(key)
                    .bind(ttl_millis(ttl))
                    .execute(&mut *connection)
                    .await
                    .map_err(fault)?
                    .rows_affected()
                    == 1,
            ),
            Op::Incr {
                key,
                delta,
                create: true,
            } => {
                let row = query(&sql.incr)
                    .bind(key)
                    .bind(delta)
                    .fetch_optional(&mut *connection)
                    .await
                    .map_err(fault)?;
                // The statement always writes a row unless the sum is out of range.
                let row = row.ok_or(StoreError::Overflow)?;
                Reply::Counter(Some(row.try_get(0).map_err(fault)?))
            }
            Op::Incr {
                key,
                delta,
                create: false,
            } => {
                let row = query(&sql.incr_existing)
                    .bind(key)
                    .bind(delta)
                    .fetch_optional(&mut *connection)
                    .await
                    .map_err(fault)?;
                match row {
                    None => Reply::Counter(None),
                    Some(row) if row.try_get::<bool, _>(0).map_err(fault)? => {
                        Reply::Counter(Some(row.try_get(1).map_err(fault)?))
                    }
                    Some(_) => return Err(StoreError::Overflow),
                }
            }
            Op::Cas {
                key,
                value,
                token,
                ttl,
            } => {
                // No stored value encodes to zero bytes: the empty token means "held
                // nothing", which only `add` can check.
                let expected = token.as_bytes().unwrap_or_default();
                let done = if expected.is_empty() {
                    query(&sql.add).bind(key).bind(value).bind(ttl_millis(ttl))
                } else {
                    query(&sql.cas)
                        .bind(key)
                        .bind(expected.to_vec())
                        .bind(value)
                        .bind(ttl_millis(ttl))
                };
                Reply::Applied(
                    done.execute(&mut *connection)
                        .await
                        .map_err(fault)?
                        .rows_affected()
                        == 1,
                )
            }
            Op::Clear { namespace } => {
                // Every key of the namespace starts with it: one range over the primary
                // key, `[namespace, successor)`.
                let deleted = match successor(&namespace) {
                    Some(end) => query(&sql.clear_range).bind(namespace).bind(end),
                    None => query(&sql.clear_from).bind(namespace),
                };
                deleted.execute(&mut *connection).await.map_err(fault)?;
                Reply::Done
            }
            Op::Move { from, to } => Reply::Applied(
                query(&sql.rename)
                    .bind(from)
                    .bind(to)
                    .execute(&mut *connection)
                    .await
                    .map_err(fault)?
                    .rows_affected()
                    == 1,
            ),
        })
    }

    /// One batch of expired rows; then, if the table holds more than `max_entries` rows,
    /// a `1 / cull_frequency` share of them, those closest to expiring first (Django's
    /// `MAX_ENTRIES` and `CULL_FREQUENCY`; Django culls in key order, which is arbitrary).
    async fn cull_on(&self, connection: &mut PgConnection) -> Result<u64, StoreError> {
        let sql = &self.statements;
        let fault = |error| self.fault(error);
        let expired = query(&sql.cull_expired)
            .bind(CULL_BATCH)
            .execute(&mut *connection)
            .await
            .map_err(fault)?
            .rows_affected();
        self.expirations.fetch_add(expired, Ordering::Relaxed);
        let mut evicted = 0;
        if let Some(max_entries) = self.settings.max_entries {
            let rows: i64 = query(&sql.count)
                .fetch_one(&mut *connection)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(fault)?;
            let rows = rows.max(0) as u64;
            if rows > max_entries {
                let share = (rows / self.settings.cull_frequency).max(rows - max_entries);
                evicted = query(&sql.cull_oldest)
                    .bind(i64::try_from(share).unwrap_or(i64::MAX))
                    .execute(&mut *connection)
                    .await
                    .map_err(fault)?
                    .rows_affected();
                self.evictions.fetch_add(evicted, Ordering::Relaxed);
            }
        }
        Ok(expired + evicted)
    }

    /// The store's error for a failed statement. Only a server that cannot be reached or
    /// cannot serve (`Unavailable`, `Timeout`) makes callers skip it for `retry_after`;
    /// a value that is not a counter, or a statement refused for a reason of its own,
    /// says nothing about the server.
    fn fault(&self, error: sqlx::Error) -> StoreError {
        let code = match &error {
            sqlx::Error::Database(database) => database.code().map(|code| code.into_owned()),
            _ => None,
        };
        match (&error, code.as_deref()) {
            (sqlx::Error::PoolTimedOut, _) => StoreError::Timeout(self.settings.connect_timeout),
            (
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
                _,
            ) => StoreError::Unavailable(error.to_string()),
            // connection_exception, operator_intervention (shutdown, statement cancelled
            // by the server), insufficient_resources, system_error.
            (_, Some(code))
                if ["08", "57", "53", "58"]
                    .iter()
                    .any(|class| code.starts_with(class)) =>
            {
                StoreError::Unavailable(error.to_string())
            }
            // data_exception: what `incr` meets in a value that is not a counter.
            (_, Some(code)) if code.starts_with("22") => {
                StoreError::Corrupt(format!("not an integer counter: {error}"))
            }
            // undefined_table, which the next call creates again.
            (_, Some("42P01")) if self.settings.create_table => {
                self.table_ready.store(false, Ordering::Release);
                StoreError::Other(format!("{error}; creating it again on the next call").into())
            }
            // undefined_table, which only a migration fixes: every call would fail alike
            // until then, so skipping the server for `retry_after` spares each caller the
            // round trip (and the log a line per call).
            (_, Some("42P01")) => StoreError::Unavailable(format!(
                "{error}: create the cache table with `cachemacro_runtime::sql::migrate`, \
                 the script of `sql::create_table_sql`, or `SqlStoreBuilder::create_table(true)`"
            )),
            _ => StoreError::Other(Box::new(error)),
        }
    }
}

/// Writes that can add rows, and so count towards the next cull.
fn adds_rows(op: &Op) -> bool {
    matches!(
        op,
        Op::Set { .. }
            | Op::SetMany { .. }
            | Op::Add { .. }
            | Op::Cas { .. }
            | Op::Incr { create: true, .. }
    )
}

fn query(text: &Arc<str>) -> sqlx::query::Query<'static, sqlx::Postgres, PgArguments> {
    sqlx::query(AssertSqlSafe(Arc::clone(text)))
}

/// The keys and values of `entries`, the last value given for a key winning: one
/// `INSERT .. ON CONFLICT` cannot update a row twice.
pub(super) fn last_value_per_key(entries: Vec<(Vec<u8>, Vec<u8>)>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut positions: HashMap<Vec<u8>, usize> = HashMap::with_capacity(entries.len());
    let mut keys = Vec::with_capacity(entries.len());
    let mut values = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match positions.get(&key) {
            Some(&position) => values[position] = value,
            None => {
                positions.insert(key.clone(), keys.len());
                keys.push(key);
                values.push(value);
            }
        }
    }
    (keys, values)
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
pub(super) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A time to live in the expiry column's unit; `None`: never expires.
fn ttl_millis(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX))
}
