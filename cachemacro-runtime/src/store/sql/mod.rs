//! [`SqlStore`]: a cache in a table of the PostgreSQL database an application already
//! has, and the table's migration — Django's database cache and its `createcachetable`.
//!
//! # The table
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "cachemacro_cache" (
//!     key BYTEA PRIMARY KEY,
//!     value BYTEA NOT NULL,
//!     expires_at BIGINT -- milliseconds since the Unix epoch; NULL: never expires
//! );
//! CREATE INDEX IF NOT EXISTS "cachemacro_cache_expires_at" ON "cachemacro_cache" (expires_at);
//! ```
//!
//! Create it once per database, before the first store uses it, in one of three ways:
//! run [`migrate`] (or [`migrate_table`] for another table name) at start-up, add the
//! script from [`create_table_sql`] to the application's own migrations (printing it is
//! Django's `createcachetable --dry-run`), or let the store create it on first use with
//! [`SqlStoreBuilder::create_table`]. All three are idempotent.
//!
//! # Keys, values, expiry
//!
//! Keys are `<prefix>:<namespace>:` followed by the MessagePack encoding of the key, as in
//! `RedisStore`; values are the same MessagePack (integers as decimal
//! text, which is what [`CacheApi::incr`] counts in, in SQL). Expiry is read from the
//! database server's clock, so application servers with skewed clocks agree. An expired
//! row is a miss from the moment it expires; it is deleted later, in batches, every
//! [`cull_every`](SqlStoreBuilder::cull_every) writes, or by [`SqlStore::cull`].
//!
//! # Faults
//!
//! Getting a connection is bounded by the connect timeout and each statement by the
//! operation timeout. After a failed connect the store answers
//! [`StoreError::Unavailable`] at once for `retry_after`, so a dead server costs callers
//! only the computation they would have done anyway; it reconnects by itself afterwards.
//! Bytes that no longer decode are [`StoreError::Corrupt`], which `#[memoize]` treats as a
//! miss and overwrites.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Postgres, Row};
use tokio::runtime::Runtime;

/// The connection pool [`migrate`] takes (sqlx's, re-exported so that its version always
/// matches this crate's).
pub use sqlx::PgPool;

use super::codec::{self, Backoff, Codec, KeyOptions, KeySpace, MessagePack};
use crate::store::CasTokenRepr;
use crate::{CacheApi, CasToken, Store, StoreError, StoreStats};

/// The table [`SqlStore`] and [`migrate`] use unless told otherwise.
///
/// ```
/// assert_eq!(cachemacro_runtime::sql::DEFAULT_TABLE, "cachemacro_cache");
/// ```
pub const DEFAULT_TABLE: &str = "cachemacro_cache";

/// The migration of [`DEFAULT_TABLE`], as [`create_table_sql`] writes it: paste it into
/// the application's own migrations, or run it with `psql`.
///
/// ```
/// use cachemacro_runtime::sql;
///
/// assert_eq!(sql::CREATE_TABLE_SQL, sql::create_table_sql(sql::DEFAULT_TABLE)?);
/// println!("{}", sql::CREATE_TABLE_SQL); // Django's `createcachetable --dry-run`
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
pub const CREATE_TABLE_SQL: &str = r#"CREATE TABLE IF NOT EXISTS "cachemacro_cache" (
    key BYTEA PRIMARY KEY,
    value BYTEA NOT NULL,
    expires_at BIGINT -- milliseconds since the Unix epoch; NULL: never expires
);
CREATE INDEX IF NOT EXISTS "cachemacro_cache_expires_at" ON "cachemacro_cache" (expires_at);
"#;

/// The migration creating the cache table `table` (a name such as `cachemacro_cache`, or
/// `schema.table`), idempotent; an error if `table` is not a plain SQL identifier.
///
/// ```
/// use cachemacro_runtime::sql;
///
/// let script = sql::create_table_sql("cache.pages")?;
/// assert!(script.starts_with(r#"CREATE TABLE IF NOT EXISTS "cache"."pages" ("#));
/// assert!(sql::create_table_sql("pages; DROP TABLE users").is_err());
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
pub fn create_table_sql(table: &str) -> Result<String, StoreError> {
    Ok(TableName::parse(table)?.create_script())
}

/// Creates [`DEFAULT_TABLE`] and its expiry index if they do not exist (Django's
/// `createcachetable`). Safe to run from several processes at once.
///
/// ```no_run
/// use cachemacro_runtime::sql::{self, PgPool};
///
/// # async fn run() -> Result<(), cachemacro_runtime::StoreError> {
/// let pool = PgPool::connect_lazy("postgres://app@127.0.0.1/shop").expect("a valid URL");
/// sql::migrate(&pool).await?;
/// # Ok(())
/// # }
/// ```
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    migrate_table(pool, DEFAULT_TABLE).await
}

/// [`migrate`] for a table of another name (see [`create_table_sql`]).
///
/// ```no_run
/// use cachemacro_runtime::sql::{self, PgPool};
///
/// # async fn run() -> Result<(), cachemacro_runtime::StoreError> {
/// let pool = PgPool::connect_lazy("postgres://app@127.0.0.1/shop").expect("a valid URL");
/// sql::migrate_table(&pool, "page_cache").await?;
/// # Ok(())
/// # }
/// ```
pub async fn migrate_table(pool: &PgPool, table: &str) -> Result<(), StoreError> {
    let table = TableName::parse(table)?;
    let mut connection = pool.acquire().await.map_err(migration_error)?;
    run_migration(&mut connection, &table)
        .await
        .map_err(migration_error)
}

fn migration_error(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("creating the cache table failed: {error}"))
}

/// Runs the script under a transaction-scoped advisory lock: two `CREATE TABLE IF NOT
/// EXISTS` racing each other can still fail on PostgreSQL's catalog unique index.
async fn run_migration(connection: &mut PgConnection, table: &TableName) -> sqlx::Result<()> {
    let mut transaction = connection.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("cachemacro migration {}", table.quoted))
        .execute(&mut *transaction)
        .await?;
    sqlx::raw_sql(AssertSqlSafe(table.create_script()))
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await
}

/// A validated table name, `name` or `schema.name`, and its quoted SQL form.
#[derive(Debug, Clone)]
struct TableName {
    /// `"schema"."name"`, safe to splice into SQL.
    quoted: String,
    /// `"name_expires_at"`: the index lives in the table's schema.
    index: String,
}

impl TableName {
    fn parse(name: &str) -> Result<TableName, StoreError> {
        let parts: Vec<&str> = name.split('.').collect();
        let valid = |part: &&str| {
            // PostgreSQL truncates identifiers beyond 63 bytes; refuse rather than
            // silently use another name than the one given.
            part.len() <= 63
                && part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if parts.len() > 2 || !parts.iter().all(valid) {
            return Err(StoreError::Other(
                format!(
                    "invalid cache table name `{name}`: expected `table` or `schema.table`, \
                     each an identifier of ASCII letters, digits and `_` (at most 63 bytes)"
                )
                .into(),
            ));
        }
        let quoted = parts
            .iter()
            .map(|part| format!("\"{part}\""))
            .collect::<Vec<_>>()
            .join(".");
        let index = format!("\"{}_expires_at\"", parts[parts.len() - 1]);
        Ok(TableName { quoted, index })
    }

    fn create_script(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n    \
                 key BYTEA PRIMARY KEY,\n    \
                 value BYTEA NOT NULL,\n    \
                 expires_at BIGINT -- milliseconds since the Unix epoch; NULL: never expires\n\
             );\n\
             CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);\n",
            table = self.quoted,
            index = self.index,
        )
    }
}

/// A [`Store`] in a PostgreSQL table, for sync and async memoized functions, shared by
/// every process using the same database, and surviving their restarts.
///
/// ```no_run
/// use cachemacro_runtime::{memoize, SqlStore};
///
/// fn database_cache() -> SqlStore {
///     SqlStore::builder("postgres://app@127.0.0.1/shop")
///         .prefix("bookshop")
///         .create_table(true)
///         .build()
///         .expect("a valid PostgreSQL URL")
/// }
///
/// #[memoize(ttl = "15m", store = database_cache())]
/// fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
///     vec![format!("{postcode} within {radius} km")]
/// }
///
/// // Served from the table by any process using the same prefix, and still computed
/// // (not failed) when the database is down.
/// let shops = nearby_stores("EC1A 1BB", 5);
/// # let _ = shops;
/// ```
///
/// # Threads and runtimes
///
/// sqlx is asynchronous only, and its connections belong to the tokio runtime that
/// opened them: a pool filled from one test's or request's runtime breaks when that
/// runtime shuts down. So the store owns its runtime (one worker thread, named
/// `cachemacro-sql`, started on first use and stopped when the store drops), and every
/// connection lives there:
///
/// * async methods run the query as a task of that runtime and await it, which works
///   from any executor; dropping the future cancels the query;
/// * sync methods called outside any runtime drive the query on the calling thread
///   (`block_on` on the store's runtime: no thread hop); called from inside a runtime,
///   where `block_on` is forbidden, they hand the query to the store's runtime and block
///   the calling thread until it answers. That never deadlocks, even on a
///   `current_thread` runtime, because the query does not need the caller's runtime; it
///   does hold that thread for one round trip, as any blocking call would.
pub struct SqlStore<C = MessagePack> {
    codec: C,
    connect_options: PgConnectOptions,
    keys: KeySpace,
    shared: Arc<Shared>,
    engine: OnceLock<Engine>,
    engine_start: Mutex<()>,
    writes: AtomicU64,
}

/// Settings of a [`SqlStore`]; from [`SqlStore::builder`].
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::SqlStore;
///
/// let store = SqlStore::builder("postgres://app@127.0.0.1:5432/shop")
///     .table("cache.pages")
///     .prefix("bookshop")
///     .namespace("pages")
///     .connect_timeout(Duration::from_secs(1))
///     .operation_timeout(Duration::from_millis(500))
///     .retry_after(Duration::from_secs(2))
///     .max_connections(16)
///     .max_entries(100_000)
///     .cull_frequency(4)
///     .cull_every(200)
///     .create_table(true)
///     .build();
/// assert!(store.is_ok()); // nothing is connected until the first call
/// ```
#[derive(Debug, Clone)]
pub struct SqlStoreBuilder<C = MessagePack> {
    codec: C,
    url: String,
    table: String,
    keys: KeyOptions,
    settings: Settings,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    connect_timeout: Duration,
    operation_timeout: Duration,
    retry_after: Duration,
    max_connections: u32,
    max_entries: Option<u64>,
    cull_frequency: u64,
    cull_every: u64,
    create_table: bool,
}

/// What the tasks on the store's runtime need; they must own it (`'static`).
struct Shared {
    table: TableName,
    statements: Statements,
    settings: Settings,
    backoff: Backoff,
    /// Whether the table was created (`create_table`); cleared when a statement finds it
    /// missing, as after a `DROP TABLE`, so that the next call creates it again.
    table_ready: AtomicBool,
    table_creation: tokio::sync::Mutex<()>,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

/// The store's runtime and the pool whose connections live on it.
struct Engine {
    runtime: Option<Runtime>,
    pool: PgPool,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // `Runtime`'s own drop blocks, which panics when the store is dropped inside an
        // async context; nothing needs waiting for (queries in flight are cancelled).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SqlStore {
    /// A store on the database at `url` (`postgres://user:password@host:port/database`)
    /// with default settings. Nothing is connected until the first call.
    ///
    /// ```
    /// use cachemacro_runtime::SqlStore;
    ///
    /// assert!(SqlStore::connect("postgres://app@127.0.0.1/shop").is_ok());
    /// assert!(SqlStore::connect("not a url").is_err());
    /// ```
    pub fn connect(url: &str) -> Result<SqlStore, StoreError> {
        SqlStore::builder(url).build()
    }

    /// Settings for a store on the database at `url`: table [`DEFAULT_TABLE`], prefix
    /// `cachemacro`, connect timeout 500 ms, operation timeout 250 ms, retry after 1 s,
    /// 10 connections, no entry bound, expired rows culled every 100 writes, table not
    /// created by the store.
    ///
    /// The timeouts are longer than `RedisStore`'s: a PostgreSQL
    /// connection costs a TCP handshake, a backend process fork and authentication
    /// (tens of milliseconds across a network), and a statement is planned and goes
    /// through the buffer cache where a Redis command is a hash lookup.
    ///
    /// ```
    /// let builder = cachemacro_runtime::SqlStore::builder("postgres://app@127.0.0.1/shop");
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        SqlStoreBuilder {
            codec: MessagePack,
            url: url.into(),
            table: DEFAULT_TABLE.to_owned(),
            keys: KeyOptions::default(),
            settings: Settings {
                connect_timeout: Duration::from_millis(500),
                operation_timeout: Duration::from_millis(250),
                retry_after: Duration::from_secs(1),
                max_connections: 10,
                max_entries: None,
                cull_frequency: 3,
                cull_every: 100,
                create_table: false,
            },
        }
    }
}

impl<C: Codec> SqlStore<C> {
    /// The store's connection pool (started on first use), for statements of your own
    /// on the same connections, such as [`migrate`].
    ///
    /// Connections opened by such statements belong to the runtime that awaited them,
    /// and the store may use them afterwards: run them from a multi-thread runtime that
    /// lives as long as the store (a `#[tokio::main]` application's), not from a
    /// short-lived one such as a test's, nor from a current-thread runtime, whose I/O
    /// stops between its `block_on` calls.
    ///
    /// ```no_run
    /// use cachemacro_runtime::{sql, SqlStore};
    ///
    /// # async fn run() -> Result<(), cachemacro_runtime::StoreError> {
    /// let store = SqlStore::connect("postgres://app@127.0.0.1/shop")?;
    /// sql::migrate(&store.pool()?).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> Result<PgPool, StoreError> {
        Ok(self.engine()?.pool.clone())
    }

    /// Deletes every expired row of the table now (all namespaces), in batches, and,
    /// when [`max_entries`](SqlStoreBuilder::max_entries) is set and exceeded, culls
    /// the rows closest to expiring; returns how many rows were deleted. The store also
    /// does this by itself, one batch every [`cull_every`](SqlStoreBuilder::cull_every)
    /// writes; call this from a periodic job to keep a rarely written table small.
    ///
    /// ```no_run
    /// use cachemacro_runtime::SqlStore;
    ///
    /// let store = SqlStore::connect("postgres://app@127.0.0.1/shop")?;
    /// let deleted = store.cull()?;
    /// println!("{deleted} expired rows deleted");
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn cull(&self) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            match self.run_sync(Request::Cull)? {
                Answer::Count(0) => return Ok(deleted),
                Answer::Count(batch) => deleted += batch,
                _ => unreachable!("a cull answers with a count"),
            }
        }
    }

    /// The runtime and pool, started on the first call.
    fn engine(&self) -> Result<&Engine, StoreError> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let _starting = self.engine_start.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cachemacro-sql")
            .enable_all()
            .build()
            .map_err(|error| StoreError::Other(Box::new(error)))?;
        let settings = &self.shared.settings;
        // The pool spawns its maintenance task on the current runtime: ours.
        let pool = {
            let _context = runtime.enter();
            PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.connect_timeout)
                // The default pings every connection before handing it out: a second
                // round trip per call. A dead connection shows as an I/O error instead,
                // and the pool drops it.
                .test_before_acquire(false)
                .connect_lazy_with(self.connect_options.clone())
        };
        Ok(self.engine.get_or_init(|| Engine {
            runtime: Some(runtime),
            pool,
        }))
    }

    /// The query for `request` as a future that owns everything it needs, and the
    /// runtime to poll it on; also starts a cull every `cull_every` writes.
    fn prepare(
        &self,
        request: Request,
    ) -> Result<
        (
            &Runtime,
            impl Future<Output = Result<Answer, StoreError>> + Send,
        ),
        StoreError,
    > {
        self.shared.backoff.check("PostgreSQL server")?;
        let engine = self.engine()?;
        let runtime = engine
            .runtime
            .as_ref()
            .expect("present until the store drops");
        if request.is_write() {
            let every = self.shared.settings.cull_every;
            if every > 0 && self.writes.fetch_add(1, Ordering::Relaxed) % every == every - 1 {
                let cull = serve(Arc::clone(&self.shared), engine.pool.clone(), Request::Cull);
                runtime.spawn(async move {
                    if let Err(error) = cull.await {
                        tracing::debug!(%error, "culling the cache table failed");
                    }
                });
            }
        }
        Ok((
            runtime,
            serve(Arc::clone(&self.shared), engine.pool.clone(), request),
        ))
    }

    fn run_sync(&self, request: Request) -> Result<Answer, StoreError> {
        let (runtime, query) = self.prepare(request)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(query);
        }
        let (answer, answered) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = answer.send(query.await);
        });
        answered
            .recv()
            .map_err(|_| StoreError::Other("the SqlStore runtime stopped".into()))?
    }

    fn run_async(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Answer, StoreError>> + Send + 'static {
        let task = self
            .prepare(request)
            .map(|(runtime, query)| CancelOnDrop(runtime.spawn(query)));
        async move { task?.await }
    }
}

/// The codec boundary: every key and value crosses it here, and nowhere else.
impl<C: Codec> SqlStore<C> {
    fn encode_key<K: Serialize>(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        codec::encode_key(self.keys.as_str(), key)
    }

    fn encode_key_at<K: Serialize>(&self, version: u64, key: &K) -> Result<Vec<u8>, StoreError> {
        codec::encode_key(&self.keys.at_version(version), key)
    }

    fn encode_value<V: Serialize>(&self, value: &V) -> Result<Vec<u8>, StoreError> {
        codec::encode_value(&self.codec, value)
    }

    fn decode_value<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, StoreError> {
        codec::decode_value(&self.codec, bytes)
    }
}

impl<C: Codec> SqlStore<C> {
    fn encode_keys<K: Serialize>(&self, keys: &[K]) -> Result<Vec<Vec<u8>>, StoreError> {
        keys.iter().map(|key| self.encode_key(key)).collect()
    }

    fn decode_found<V: DeserializeOwned>(&self, found: Answer) -> Result<Option<V>, StoreError> {
        match found {
            Answer::Found(bytes) => bytes.map(|bytes| self.decode_value(&bytes)).transpose(),
            _ => unreachable!("a lookup answers with what it found"),
        }
    }

    fn insert_request<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<Request, StoreError> {
        Ok(Request::Set {
            key: self.encode_key(key)?,
            value: self.encode_value(value)?,
            ttl: ttl_millis(ttl),
        })
    }

    /// The namespace's key range at every version, `[start, end)`: every key starting
    /// with `<prefix>:<namespace>:`.
    fn clear_request(&self) -> Request {
        let start = self.keys.namespace_str().as_bytes().to_vec();
        let end = successor(&start);
        Request::Clear { start, end }
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn ttl_millis(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX))
}

/// A task of the store's runtime, awaited from any executor and cancelled when the
/// awaiting future is dropped.
struct CancelOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for CancelOnDrop<Result<T, StoreError>> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(context)
            .map(|joined| joined.unwrap_or_else(|error| Err(StoreError::Other(Box::new(error)))))
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One statement's worth of work, with keys and values already encoded.
enum Request {
    Get(Vec<u8>),
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<i64>,
    },
    Add {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<i64>,
    },
    Remove(Vec<u8>),
    Clear {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
    Touch {
        key: Vec<u8>,
        ttl: Option<i64>,
    },
    Incr {
        key: Vec<u8>,
        delta: i64,
    },
    IncrExisting {
        key: Vec<u8>,
        delta: i64,
    },
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Cas {
        key: Vec<u8>,
        expected: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<i64>,
    },
    GetMany(Vec<Vec<u8>>),
    SetMany {
        keys: Vec<Vec<u8>>,
        values: Vec<Vec<u8>>,
        ttl: Option<i64>,
    },
    DeleteMany(Vec<Vec<u8>>),
    Cull,
}

enum Answer {
    Found(Option<Vec<u8>>),
    Rows(Vec<(Vec<u8>, Vec<u8>)>),
    Done(bool),
    Count(u64),
    Counter(i64),
    MaybeCounter(Option<i64>),
}

impl Request {
    /// Writes that can add rows, and so count towards the next cull.
    fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Set { .. }
                | Request::Add { .. }
                | Request::Incr { .. }
                | Request::Cas { .. }
                | Request::SetMany { .. }
        )
    }
}

/// `now` in the expiry column's unit, on the database server's clock.
const NOW_MS: &str = "(extract(epoch from statement_timestamp()) * 1000)::bigint";

/// The statements of one table, rendered once. `LIVE` rows are the unexpired ones.
struct Statements {
    get: Arc<str>,
    set: Arc<str>,
    add: Arc<str>,
    remove: Arc<str>,
    clear_range: Arc<str>,
    clear_from: Arc<str>,
    touch: Arc<str>,
    incr: Arc<str>,
    incr_existing: Arc<str>,
    rename: Arc<str>,
    cas: Arc<str>,
    get_many: Arc<str>,
    set_many: Arc<str>,
    delete_many: Arc<str>,
    cull_expired: Arc<str>,
    count: Arc<str>,
    cull_oldest: Arc<str>,
}

impl Statements {
    fn new(table: &TableName) -> Statements {
        let t = &table.quoted;
        let live = format!("(expires_at IS NULL OR expires_at > {NOW_MS})");
        let live_c = format!("(c.expires_at IS NULL OR c.expires_at > {NOW_MS})");
        let upsert = "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                      expires_at = EXCLUDED.expires_at";
        let sql = |text: String| Arc::<str>::from(text);
        Statements {
            get: sql(format!("SELECT value FROM {t} WHERE key = $1 AND {live}")),
            set: sql(format!(
                "INSERT INTO {t} AS c (key, value, expires_at) \
                 VALUES ($1, $2, {NOW_MS} + $3::bigint) {upsert}"
            )),
            // An expired row counts as absent: it is replaced, atomically, under the
            // row lock that ON CONFLICT takes.
            add: sql(format!(
                "INSERT INTO {t} AS c (key, value, expires_at) \
                 VALUES ($1, $2, {NOW_MS} + $3::bigint) {upsert} WHERE NOT {live_c}"
            )),
            remove: sql(format!("DELETE FROM {t} WHERE key = $1 RETURNING {live}")),
            clear_range: sql(format!("DELETE FROM {t} WHERE key >= $1 AND key < $2")),
            clear_from: sql(format!("DELETE FROM {t} WHERE key >= $1")),
            touch: sql(format!(
                "UPDATE {t} SET expires_at = {NOW_MS} + $2::bigint WHERE key = $1 AND {live}"
            )),
            // Counters are decimal text, the codec's form of an integer, so `get` reads
            // them back; a missing or expired counter starts at 0 and never expires,
            // a live one keeps its expiry (as Redis' INCRBY does).
            incr: sql(format!(
                "INSERT INTO {t} AS c (key, value, expires_at) \
                 VALUES ($1, convert_to($2::bigint::text, 'UTF8'), NULL) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = convert_to((CASE WHEN {live_c} \
                     THEN convert_from(c.value, 'UTF8')::bigint ELSE 0 END + $2)::text, 'UTF8'), \
                 expires_at = CASE WHEN {live_c} THEN c.expires_at END \
                 RETURNING convert_from(value, 'UTF8')::bigint"
            )),
            incr_existing: sql(format!(
                "UPDATE {t} AS c SET \
                 value = convert_to((convert_from(c.value, 'UTF8')::bigint + $2)::text, 'UTF8') \
                 WHERE c.key = $1 AND {live_c} \
                 RETURNING convert_from(c.value, 'UTF8')::bigint"
            )),
            // One statement, so the entry is never in both places or in neither; it keeps
            // its expiry, and replaces whatever the target key held.
            rename: sql(format!(
                "WITH moved AS (DELETE FROM {t} WHERE key = $1 AND {live} \
                     RETURNING value, expires_at) \
                 INSERT INTO {t} AS c (key, value, expires_at) \
                 SELECT $2, value, expires_at FROM moved {upsert}"
            )),
            cas: sql(format!(
                "UPDATE {t} SET value = $3, expires_at = {NOW_MS} + $4::bigint \
                 WHERE key = $1 AND value = $2 AND {live}"
            )),
            get_many: sql(format!(
                "SELECT key, value FROM {t} WHERE key = ANY($1) AND {live}"
            )),
            set_many: sql(format!(
                "INSERT INTO {t} AS c (key, value, expires_at) \
                 SELECT k, v, {NOW_MS} + $3::bigint FROM UNNEST($1::bytea[], $2::bytea[]) AS e(k, v) \
                 {upsert}"
            )),
            delete_many: sql(format!(
                "DELETE FROM {t} WHERE key = ANY($1) RETURNING {live}"
            )),
            // By physical row id through a bounded subquery: one batch is a short
            // transaction whatever the table's size, and the expiry index finds it.
            cull_expired: sql(format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
                     SELECT ctid FROM {t} WHERE expires_at <= {NOW_MS} LIMIT $1)) \
                 AND expires_at <= {NOW_MS}"
            )),
            count: sql(format!("SELECT count(*) FROM {t}")),
            cull_oldest: sql(format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
                     SELECT ctid FROM {t} ORDER BY expires_at ASC NULLS LAST LIMIT $1))"
            )),
        }
    }
}

/// Rows one cull deletes at most per statement.
const CULL_BATCH: i64 = 1_000;

fn statement(
    text: &Arc<str>,
) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(AssertSqlSafe(Arc::clone(text)))
}

/// Takes a connection, creates the table first if asked to, and runs `request`, each
/// step within its timeout.
async fn serve(shared: Arc<Shared>, pool: PgPool, request: Request) -> Result<Answer, StoreError> {
    let settings = shared.settings;
    let mut connection: PoolConnection<Postgres> =
        match tokio::time::timeout(settings.connect_timeout, pool.acquire()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(shared.fault(error)),
            Err(_) => {
                shared.backoff.trip();
                return Err(StoreError::Timeout(settings.connect_timeout));
            }
        };
    if settings.create_table && !shared.table_ready.load(Ordering::Acquire) {
        let migration = async {
            let _creating = shared.table_creation.lock().await;
            if !shared.table_ready.load(Ordering::Acquire) {
                run_migration(&mut connection, &shared.table).await?;
                shared.table_ready.store(true, Ordering::Release);
            }
            Ok(())
        };
        match tokio::time::timeout(settings.connect_timeout, migration).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(shared.fault(error)),
            Err(_) => return Err(StoreError::Timeout(settings.connect_timeout)),
        }
    }
    match tokio::time::timeout(
        settings.operation_timeout,
        execute(&shared, &mut connection, request),
    )
    .await
    {
        Ok(answer) => answer.map_err(|error| shared.fault(error)),
        Err(_) => Err(StoreError::Timeout(settings.operation_timeout)),
    }
}

async fn execute(
    shared: &Shared,
    connection: &mut PgConnection,
    request: Request,
) -> sqlx::Result<Answer> {
    let sql = &shared.statements;
    Ok(match request {
        Request::Get(key) => Answer::Found(
            statement(&sql.get)
                .bind(key)
                .fetch_optional(&mut *connection)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        ),
        Request::Set { key, value, ttl } => {
            statement(&sql.set)
                .bind(key)
                .bind(value)
                .bind(ttl)
                .execute(&mut *connection)
                .await?;
            Answer::Done(true)
        }
        Request::Add { key, value, ttl } => Answer::Done(
            statement(&sql.add)
                .bind(key)
                .bind(value)
                .bind(ttl)
                .execute(&mut *connection)
                .await?
                .rows_affected()
                == 1,
        ),
        Request::Remove(key) => Answer::Done(
            statement(&sql.remove)
                .bind(key)
                .fetch_optional(&mut *connection)
                .await?
                .map(|row| row.try_get::<bool, _>(0))
                .transpose()?
                .unwrap_or(false),
        ),
        Request::Clear { start, end } => {
            let deleted = match end {
                Some(end) => statement(&sql.clear_range).bind(start).bind(end),
                None => statement(&sql.clear_from).bind(start),
            };
            Answer::Count(deleted.execute(&mut *connection).await?.rows_affected())
        }
        Request::Touch { key, ttl } => Answer::Done(
            statement(&sql.touch)
                .bind(key)
                .bind(ttl)
                .execute(&mut *connection)
                .await?
                .rows_affected()
                == 1,
        ),
        Request::Incr { key, delta } => Answer::Counter(
            statement(&sql.incr)
                .bind(key)
                .bind(delta)
                .fetch_one(&mut *connection)
                .await?
                .try_get(0)?,
        ),
        Request::IncrExisting { key, delta } => Answer::MaybeCounter(
            match statement(&sql.incr_existing)
                .bind(key)
                .bind(delta)
                .fetch_optional(&mut *connection)
                .await?
            {
                Some(row) => Some(row.try_get(0)?),
                None => None,
            },
        ),
        Request::Rename { from, to } => Answer::Done(
            statement(&sql.rename)
                .bind(from)
                .bind(to)
                .execute(&mut *connection)
                .await?
                .rows_affected()
                == 1,
        ),
        Request::Cas {
            key,
            expected,
            value,
            ttl,
        } => Answer::Done(
            statement(&sql.cas)
                .bind(key)
                .bind(expected)
                .bind(value)
                .bind(ttl)
                .execute(&mut *connection)
                .await?
                .rows_affected()
                == 1,
        ),
        Request::GetMany(keys) => Answer::Rows(
            statement(&sql.get_many)
                .bind(keys)
                .fetch_all(&mut *connection)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<sqlx::Result<_>>()?,
        ),
        Request::SetMany { keys, values, ttl } => {
            statement(&sql.set_many)
                .bind(keys)
                .bind(values)
                .bind(ttl)
                .execute(&mut *connection)
                .await?;
            Answer::Done(true)
        }
        Request::DeleteMany(keys) => Answer::Count(
            statement(&sql.delete_many)
                .bind(keys)
                .fetch_all(&mut *connection)
                .await?
                .into_iter()
                .map(|row| row.try_get::<bool, _>(0))
                .collect::<sqlx::Result<Vec<bool>>>()?
                .into_iter()
                .filter(|&live| live)
                .count() as u64,
        ),
        Request::Cull => Answer::Count(cull(shared, connection).await?),
    })
}

/// One batch of expired rows; then, if the table holds more than `max_entries` rows,
/// a `1 / cull_frequency` share of them, those closest to expiring first (Django's
/// `MAX_ENTRIES` and `CULL_FREQUENCY`; Django culls in key order, which is arbitrary).
async fn cull(shared: &Shared, connection: &mut PgConnection) -> sqlx::Result<u64> {
    let sql = &shared.statements;
    let expired = statement(&sql.cull_expired)
        .bind(CULL_BATCH)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    shared.expirations.fetch_add(expired, Ordering::Relaxed);
    let mut evicted = 0;
    if let Some(max_entries) = shared.settings.max_entries {
        let rows: i64 = statement(&sql.count)
            .fetch_one(&mut *connection)
            .await?
            .try_get(0)?;
        let rows = rows.max(0) as u64;
        if rows > max_entries {
            let share = (rows / shared.settings.cull_frequency).max(rows - max_entries);
            evicted = statement(&sql.cull_oldest)
                .bind(i64::try_from(share).unwrap_or(i64::MAX))
                .execute(&mut *connection)
                .await?
                .rows_affected();
            shared.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
    }
    Ok(expired + evicted)
}

impl Shared {
    /// The store's error for a failed statement; a failure to reach the server also
    /// marks it down for `retry_after`.
    fn fault(&self, error: sqlx::Error) -> StoreError {
        let code = match &error {
            sqlx::Error::Database(database) => database.code().map(|code| code.into_owned()),
            _ => None,
        };
        let unreachable = matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
            // connection_exception, operator_intervention (shutdown), insufficient_resources
            || code.as_deref().is_some_and(|code| {
                code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
            });
        if unreachable {
            self.backoff.trip();
        }
        match (&error, code.as_deref()) {
            (sqlx::Error::PoolTimedOut, _) => StoreError::Timeout(self.settings.connect_timeout),
            // data_exception: what `incr` meets in a value that is not a counter.
            (_, Some(code)) if code.starts_with("22") => StoreError::Corrupt(format!(
                "not an integer counter, or it would overflow: {error}"
            )),
            // undefined_table
            (_, Some("42P01")) if self.settings.create_table => {
                self.table_ready.store(false, Ordering::Release);
                StoreError::Unavailable(format!("{error}; creating it again on the next call"))
            }
            (_, Some("42P01")) => StoreError::Unavailable(format!(
                "{error}: create the cache table with `cachemacro_runtime::sql::migrate`, \
                 the script of `sql::create_table_sql`, or `SqlStoreBuilder::create_table(true)`"
            )),
            _ => StoreError::Unavailable(error.to_string()),
        }
    }
}

impl<C: Codec> SqlStoreBuilder<C> {
    /// The cache table, `name` or `schema.name` (default [`DEFAULT_TABLE`]).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    codec::key_setters!();

    codec::timeout_setters!(settings);

    /// Connections the store keeps at most (at least 1).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.settings.max_connections = connections.max(1);
        self
    }

    /// A bound on the rows of the whole table (every namespace in it), as Django's
    /// `MAX_ENTRIES`: when a cull finds more, it deletes a
    /// [`cull_frequency`](Self::cull_frequency) share of them. Checked every
    /// [`cull_every`](Self::cull_every) writes with a `count(*)`, so the table can
    /// exceed it by that many writes in between.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.settings.max_entries = Some(entries);
        self
    }

    /// Over [`max_entries`](Self::max_entries), a cull deletes `1 / frequency` of the
    /// rows (at least down to the bound), those closest to expiring first; Django's
    /// `CULL_FREQUENCY`, default 3.
    pub fn cull_frequency(mut self, frequency: u64) -> Self {
        self.settings.cull_frequency = frequency.max(1);
        self
    }

    /// Every `writes` writes, one batch of at most 1 000 expired rows is deleted (and
    /// [`max_entries`](Self::max_entries) enforced) in the background; 0 turns it off,
    /// leaving [`SqlStore::cull`] to a periodic job.
    pub fn cull_every(mut self, writes: u64) -> Self {
        self.settings.cull_every = writes;
        self
    }

    /// Whether the store creates its table (and index) if missing, once, before its
    /// first statement, as [`migrate_table`] does. Off by default: schema changes
    /// usually belong to the application's migrations, and the database role that
    /// serves requests may not be allowed to make them.
    pub fn create_table(mut self, create: bool) -> Self {
        self.settings.create_table = create;
        self
    }

    /// How values are written (default [`MessagePack`]); keys are always MessagePack.
    ///
    /// ```
    /// use cachemacro_runtime::{MessagePack, SqlStore};
    ///
    /// let store: SqlStore<MessagePack> = SqlStore::builder("postgres://app@127.0.0.1/shop")
    ///     .codec(MessagePack)
    ///     .build()?;
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn codec<D: Codec>(self, codec: D) -> SqlStoreBuilder<D> {
        SqlStoreBuilder {
            codec,
            url: self.url,
            table: self.table,
            keys: self.keys,
            settings: self.settings,
        }
    }

    /// The store. Fails only on an invalid URL or table name: nothing is connected
    /// until first use.
    pub fn build(self) -> Result<SqlStore<C>, StoreError> {
        let connect_options = PgConnectOptions::from_str(&self.url)
            .map_err(|error| StoreError::Unavailable(format!("invalid PostgreSQL URL: {error}")))?;
        let table = TableName::parse(&self.table)?;
        Ok(SqlStore {
            codec: self.codec,
            connect_options,
            keys: self.keys.into_key_space(),
            shared: Arc::new(Shared {
                statements: Statements::new(&table),
                table,
                settings: self.settings,
                backoff: Backoff::new(self.settings.retry_after),
                table_ready: AtomicBool::new(false),
                table_creation: tokio::sync::Mutex::new(()),
                evictions: AtomicU64::new(0),
                expirations: AtomicU64::new(0),
            }),
            engine: OnceLock::new(),
            engine_start: Mutex::new(()),
            writes: AtomicU64::new(0),
        })
    }
}

impl<K, V, C: Codec> Store<K, V> for SqlStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = self.encode_key(key)?;
        self.decode_found(self.run_sync(Request::Get(key))?)
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.run_sync(self.insert_request(&key, &value, ttl)?)
            .map(drop)
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        done(self.run_sync(Request::Remove(key))?)
    }

    /// Deletes this namespace's rows: one range delete over the primary key, since all
    /// of them start with `<prefix>:<namespace>:`.
    fn clear(&self) -> Result<(), StoreError> {
        self.run_sync(self.clear_request()).map(drop)
    }

    fn with_namespace(mut self, namespace: &'static str) -> Self {
        self.keys.adopt_namespace(namespace);
        self
    }

    /// Expired rows deleted by culls (`expirations`) and rows culled over
    /// `max_entries` (`evictions`) by this store instance; `entries` is not counted.
    fn stats(&self) -> StoreStats {
        StoreStats::new(
            0,
            self.shared.evictions.load(Ordering::Relaxed),
            self.shared.expirations.load(Ordering::Relaxed),
        )
    }

    fn get_async(&self, key: &K) -> impl Future<Output = Result<Option<V>, StoreError>> + Send
    where
        V: Send,
    {
        let query = self
            .encode_key(key)
            .map(|key| self.run_async(Request::Get(key)));
        async move { self.decode_found(query?.await?) }
    }

    fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let query = self
            .insert_request(&key, &value, ttl)
            .map(|request| self.run_async(request));
        async move { query?.await.map(drop) }
    }

    fn remove_async(&self, key: &K) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let query = self
            .encode_key(key)
            .map(|key| self.run_async(Request::Remove(key)));
        async move { done(query?.await?) }
    }
}

fn done(answer: Answer) -> Result<bool, StoreError> {
    match answer {
        Answer::Done(done) => Ok(done),
        _ => unreachable!("a conditional statement answers whether it applied"),
    }
}

fn count(answer: Answer) -> Result<u64, StoreError> {
    match answer {
        Answer::Count(count) => Ok(count),
        _ => unreachable!("a bulk statement answers with a row count"),
    }
}

fn counter(answer: Answer) -> Result<i64, StoreError> {
    match answer {
        Answer::Counter(value) => Ok(value),
        _ => unreachable!("an increment answers with the counter"),
    }
}

/// The requests of the low-level API and the reading of their answers, shared by the
/// sync and async methods.
impl<C: Codec> SqlStore<C> {
    fn add_request<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<Request, StoreError> {
        Ok(Request::Add {
            key: self.encode_key(key)?,
            value: self.encode_value(value)?,
            ttl: ttl_millis(ttl),
        })
    }

    fn touch_request<K: Serialize>(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> Result<Request, StoreError> {
        Ok(Request::Touch {
            key: self.encode_key(key)?,
            ttl: ttl_millis(ttl),
        })
    }

    fn incr_request<K: Serialize>(&self, key: &K, delta: i64) -> Result<Request, StoreError> {
        Ok(Request::Incr {
            key: self.encode_key(key)?,
            delta,
        })
    }

    fn read_gets<V: DeserializeOwned>(
        &self,
        answer: Answer,
    ) -> Result<Option<(V, CasToken)>, StoreError> {
        match answer {
            Answer::Found(Some(bytes)) => Ok(Some((
                self.decode_value(&bytes)?,
                CasToken(CasTokenRepr::Bytes(bytes)),
            ))),
            _ => Ok(None),
        }
    }

    fn cas_request<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<Request, StoreError> {
        let CasToken(CasTokenRepr::Bytes(expected)) = token else {
            return Err(CasToken::foreign());
        };
        // No stored value encodes to zero bytes: the empty token means "held nothing".
        if expected.is_empty() {
            return self.add_request(key, value, ttl);
        }
        Ok(Request::Cas {
            key: self.encode_key(key)?,
            expected: expected.clone(),
            value: self.encode_value(value)?,
            ttl: ttl_millis(ttl),
        })
    }

    /// The values of `keys` (encoded), in order, from the rows found.
    fn read_many<V: DeserializeOwned>(
        &self,
        keys: &[Vec<u8>],
        answer: Answer,
    ) -> Result<Vec<Option<V>>, StoreError> {
        let Answer::Rows(rows) = answer else {
            unreachable!("a multi-get answers with rows");
        };
        let found: HashMap<Vec<u8>, Vec<u8>> = rows.into_iter().collect();
        keys.iter()
            .map(|key| {
                found
                    .get(key)
                    .map(|bytes| self.decode_value(bytes))
                    .transpose()
            })
            .collect()
    }

    /// `None` when there is nothing to write.
    fn set_many_request<K: Serialize, V: Serialize>(
        &self,
        entries: &[(K, V)],
        ttl: Option<Duration>,
    ) -> Result<Option<Request>, StoreError> {
        // One INSERT cannot update a row twice: the last value given for a key wins.
        let mut positions: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut keys = Vec::with_capacity(entries.len());
        let mut values = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key = self.encode_key(key)?;
            let value = self.encode_value(value)?;
            match positions.get(&key) {
                Some(&position) => values[position] = value,
                None => {
                    positions.insert(key.clone(), keys.len());
                    keys.push(key);
                    values.push(value);
                }
            }
        }
        Ok((!keys.is_empty()).then(|| Request::SetMany {
            keys,
            values,
            ttl: ttl_millis(ttl),
        }))
    }
}

/// Every method is one statement, atomic in PostgreSQL: `add` and `incr` are
/// `INSERT .. ON CONFLICT DO UPDATE`, `cas` an `UPDATE .. WHERE value = <the bytes
/// read>`, and the batched methods one statement over arrays. The `*_async` methods run
/// the same statements without blocking.
///
/// ```no_run
/// use cachemacro_runtime::{CacheApi, SqlStore};
///
/// let store = SqlStore::builder("postgres://app@127.0.0.1/shop").build()?;
/// let hits = CacheApi::<&str, i64>::incr(&store, &"hit_count", 1)?; // never loses a hit
/// assert!(hits >= 1);
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
impl<K, V, C: Codec> CacheApi<K, V> for SqlStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send,
{
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError> {
        done(self.run_sync(self.add_request(&key, &value, ttl)?)?)
    }

    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError> {
        done(self.run_sync(self.touch_request(key, ttl)?)?)
    }

    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        counter(self.run_sync(self.incr_request(key, delta)?)?)
    }

    /// One `UPDATE .. RETURNING` of a live row: no row, no counter.
    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError> {
        let request = Request::IncrExisting {
            key: self.encode_key(key)?,
            delta,
        };
        match self.run_sync(request)? {
            Answer::MaybeCounter(counted) => Ok(counted),
            _ => unreachable!("an increment answers with the counter"),
        }
    }

    /// Unlike Redis' and memcached's, atomic: one `DELETE .. RETURNING` feeding an
    /// `INSERT`, keeping the entry's expiry.
    fn incr_version(&self, key: &K, delta: i64) -> Result<Option<u64>, StoreError> {
        let version = self.keys.shifted_version(delta)?;
        let request = Request::Rename {
            from: self.encode_key(key)?,
            to: self.encode_key_at(version, key)?,
        };
        Ok(done(self.run_sync(request)?)?.then_some(version))
    }

    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError> {
        let key = self.encode_key(key)?;
        self.read_gets(self.run_sync(Request::Get(key))?)
    }

    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        done(self.run_sync(self.cas_request(&key, &value, token, ttl)?)?)
    }

    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = self.encode_keys(keys)?;
        self.read_many(&encoded, self.run_sync(Request::GetMany(encoded.clone()))?)
    }

    fn set_many(&self, entries: Vec<(K, V)>, ttl: Option<Duration>) -> Result<(), StoreError> {
        match self.set_many_request(&entries, ttl)? {
            Some(request) => self.run_sync(request).map(drop),
            None => Ok(()),
        }
    }

    fn delete_many(&self, keys: &[K]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let encoded = self.encode_keys(keys)?;
        Ok(count(self.run_sync(Request::DeleteMany(encoded))?)? as usize)
    }

    fn add_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let query = self
            .add_request(&key, &value, ttl)
            .map(|request| self.run_async(request));
        async move { done(query?.await?) }
    }

    fn touch_async(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let query = self
            .touch_request(key, ttl)
            .map(|request| self.run_async(request));
        async move { done(query?.await?) }
    }

    fn incr_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let query = self
            .incr_request(key, delta)
            .map(|request| self.run_async(request));
        async move { counter(query?.await?) }
    }

    fn gets_async(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Option<(V, CasToken)>, StoreError>> + Send
    where
        V: Send,
    {
        let query = self
            .encode_key(key)
            .map(|key| self.run_async(Request::Get(key)));
        async move { self.read_gets(query?.await?) }
    }

    fn cas_async(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let query = self
            .cas_request(&key, &value, token, ttl)
            .map(|request| self.run_async(request));
        async move { done(query?.await?) }
    }

    fn get_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<Option<V>>, StoreError>> + Send
    where
        V: Send,
    {
        let query = match self.encode_keys(keys) {
            Ok(encoded) if encoded.is_empty() => Ok(None),
            Ok(encoded) => Ok(Some((
                self.run_async(Request::GetMany(encoded.clone())),
                encoded,
            ))),
            Err(error) => Err(error),
        };
        async move {
            match query? {
                Some((answer, encoded)) => self.read_many(&encoded, answer.await?),
                None => Ok(Vec::new()),
            }
        }
    }

    fn set_many_async(
        &self,
        entries: Vec<(K, V)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let query = self
            .set_many_request(&entries, ttl)
            .map(|request| request.map(|request| self.run_async(request)));
        async move {
            match query? {
                Some(answer) => answer.await.map(drop),
                None => Ok(()),
            }
        }
    }

    fn delete_many_async(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let query = match self.encode_keys(keys) {
            Ok(encoded) if encoded.is_empty() => Ok(None),
            Ok(encoded) => Ok(Some(self.run_async(Request::DeleteMany(encoded)))),
            Err(error) => Err(error),
        };
        async move {
            match query? {
                Some(answer) => Ok(count(answer.await?)? as usize),
                None => Ok(0),
            }
        }
    }
}

impl<C> fmt::Debug for SqlStore<C> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.connect_options;
        formatter
            .debug_struct("SqlStore")
            .field(
                "server",
                &format_args!("{}:{}", options.get_host(), options.get_port()),
            )
            .field("database", &options.get_database().unwrap_or_default())
            .field("table", &self.shared.table.quoted)
            .field("keys", &self.keys.as_str())
            .field("connect_timeout", &self.shared.settings.connect_timeout)
            .field("operation_timeout", &self.shared.settings.operation_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_script_is_the_published_constant() {
        assert_eq!(create_table_sql(DEFAULT_TABLE).unwrap(), CREATE_TABLE_SQL);
    }

    #[test]
    fn table_names_are_identifiers_or_refused() {
        let table = TableName::parse("cache.Pages_2").unwrap();
        assert_eq!(table.quoted, "\"cache\".\"Pages_2\"");
        assert_eq!(table.index, "\"Pages_2_expires_at\"");
        for bad in [
            "",
            "1pages",
            "pages\"",
            "a.b.c",
            "pages; DROP TABLE users",
            "naïve",
            &"x".repeat(64),
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_namespace_range_ends_just_past_its_prefix() {
        assert_eq!(successor(b"app:ns:").unwrap(), b"app:ns;");
        assert_eq!(successor(b"a\xff\xff").unwrap(), b"b");
        assert_eq!(successor(b"\xff"), None);
    }

    #[test]
    fn invalid_settings_fail_at_build_not_at_first_use() {
        assert!(SqlStore::connect("postgres://127.0.0.1/db").is_ok());
        assert!(SqlStore::connect("not a url").is_err());
        assert!(SqlStore::builder("postgres://127.0.0.1/db")
            .table("x y")
            .build()
            .is_err());
    }

    #[test]
    fn a_store_dropped_inside_a_runtime_does_not_panic() {
        let store = SqlStore::builder(format!("postgres://127.0.0.1:{}/db", 1))
            .connect_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        assert!(Store::<u32, u32>::get(&store, &1).is_err());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            assert!(Store::<u32, u32>::get_async(&store, &1).await.is_err());
            drop(store);
        });
    }
}
