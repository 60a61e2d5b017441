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
//! [`create_table`](SqlStoreBuilder::create_table). All three are idempotent.
//!
//! # Keys, values, expiry
//!
//! Keys are `<prefix>:<namespace>:<version>:` followed by the MessagePack encoding of the
//! key, as in `RedisStore`; values are the same MessagePack (integers as decimal text,
//! which is what [`CacheApi::incr`](crate::CacheApi::incr) counts in, in SQL). Expiry is
//! read from the database server's clock, so application servers with skewed clocks
//! agree. An expired row is a miss from the moment it expires; it is deleted later, in
//! batches, every [`cull_every`](SqlStoreBuilder::cull_every) writes, or by
//! [`SqlStore::cull`].
//!
//! # Faults
//!
//! Getting a connection is bounded by the connect timeout and each statement by the
//! operation timeout. After a server that cannot be reached or a timeout, the store
//! answers [`StoreError::Unavailable`] at once for `retry_after`, so a dead server costs
//! callers only the computation they would have done anyway; then one caller probes it,
//! and it is used again as soon as it answers. Bytes that no longer decode are
//! [`StoreError::Corrupt`], which `#[memoize]` treats as a miss and overwrites.

mod engine;
mod schema;
mod statements;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;

use self::engine::{Engine, Settings};
use self::schema::TableName;
use crate::store::encoded::backend::{Backend, Op, Reply};
use crate::store::encoded::bridge::OwnRuntime;
use crate::store::encoded::builder::{sealed, NetworkSettings, ServerOptions, StoreBuilder};
use crate::store::encoded::codec::{Codec, MessagePack};
use crate::store::encoded::EncodedStore;
use crate::store::{StoreError, StoreStats};

pub use self::schema::{create_table_sql, migrate, migrate_table, CREATE_TABLE_SQL, DEFAULT_TABLE};
/// The connection pool [`migrate`] takes (sqlx's, re-exported so that its version always
/// matches this crate's).
pub use sqlx::PgPool;

/// A [`Store`](crate::Store) and [`CacheApi`](crate::CacheApi) in a PostgreSQL table, for
/// sync and async memoized functions, shared by every process using the same database,
/// and surviving their restarts.
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
/// Every operation is one statement, atomic in PostgreSQL: `add` and `incr` are
/// `INSERT .. ON CONFLICT DO UPDATE`, `cas` an `UPDATE .. WHERE value = <the bytes read>`,
/// `incr_version` (unlike Redis' and memcached's, atomic) one `DELETE .. RETURNING`
/// feeding an `INSERT` that keeps the entry's expiry, and the batched calls one statement
/// over arrays.
///
/// ```no_run
/// use cachemacro_runtime::{CacheApi, SqlStore};
///
/// let store = SqlStore::new("postgres://app@127.0.0.1/shop")?;
/// let hits = CacheApi::<&str, i64>::incr(&store, &"hit_count", 1)?; // never loses a hit
/// assert!(hits >= 1);
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
///
/// # Threads and runtimes
///
/// sqlx is asynchronous only, and its connections belong to the tokio runtime that
/// opened them: a pool filled from one test's or request's runtime breaks when that
/// runtime shuts down. So the store owns its runtime (one worker thread, named
/// `cachemacro-sql`, started on first use and stopped when the last clone of the store
/// drops), and every connection lives there:
///
/// * async methods run the query as a task of that runtime and await it, which works
///   from any executor; dropping the future cancels the query;
/// * sync methods called outside any runtime drive the query on the calling thread
///   (`block_on` on the store's runtime: no thread hop); called from inside a runtime,
///   where `block_on` is forbidden, they hand the query to the store's runtime and block
///   the calling thread until it answers. That never deadlocks, even on a
///   `current_thread` runtime, because the query does not need the caller's runtime; it
///   does hold that thread for one round trip, as any blocking call would.
pub type SqlStore<C = MessagePack> = EncodedStore<Postgres, C>;

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
///     .pool_size(16)
///     .max_entries(100_000)
///     .cull_frequency(4)
///     .cull_every(200)
///     .create_table(true)
///     .build();
/// assert!(store.is_ok()); // nothing is connected until the first call
/// ```
pub type SqlStoreBuilder<C = MessagePack> = StoreBuilder<SqlOptions, C>;

/// The options only a [`SqlStore`] has: the database, the table, culling and whether the
/// store creates its table. Set through [`SqlStoreBuilder`]'s methods.
///
/// ```
/// use cachemacro_runtime::backend::SqlOptions;
/// use cachemacro_runtime::{SqlStore, StoreBuilder};
///
/// let builder: StoreBuilder<SqlOptions> = SqlStore::builder("postgres://app@127.0.0.1/shop");
/// assert!(builder.max_entries(10_000).build().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct SqlOptions {
    url: String,
    table: String,
    max_entries: Option<u64>,
    cull_frequency: u64,
    cull_every: u64,
    create_table: bool,
}

impl sealed::Sealed for SqlOptions {}
impl ServerOptions for SqlOptions {}

/// The PostgreSQL [`Backend`] of [`SqlStore`]: one table, through a pool of sqlx
/// connections on a runtime of its own. Clones share the pool, the runtime and the
/// table's counters.
///
/// ```
/// use cachemacro_runtime::backend::{Backend, Postgres};
/// use cachemacro_runtime::SqlStore;
///
/// let store = SqlStore::new("postgres://app@127.0.0.1:5432/shop")?;
/// let backend: &Postgres = store.backend();
/// assert_eq!(backend.describe(0), "PostgreSQL at 127.0.0.1:5432/shop");
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Postgres {
    /// Apart from the engine, which the runtime's tasks own: the runtime stops when the
    /// last clone of the backend drops, never from inside one of its own tasks.
    runtime: Arc<OwnRuntime>,
    engine: Arc<Engine>,
}

impl SqlStore {
    /// A store on the database at `url` (`postgres://user:password@host:port/database`)
    /// with default settings. Nothing is connected until the first call.
    ///
    /// ```
    /// use cachemacro_runtime::SqlStore;
    ///
    /// assert!(SqlStore::new("postgres://app@127.0.0.1/shop").is_ok());
    /// assert!(SqlStore::new("not a url").is_err());
    /// ```
    pub fn new(url: &str) -> Result<SqlStore, StoreError> {
        SqlStore::builder(url).build()
    }

    /// Settings for a store on the database at `url`: table [`DEFAULT_TABLE`], prefix
    /// `cachemacro`, connect timeout 500 ms, operation timeout 250 ms, retry after 1 s,
    /// up to 10 connections, no entry bound, expired rows culled every 100 writes, table
    /// not created by the store.
    ///
    /// The timeouts are longer than `RedisStore`'s: a PostgreSQL connection costs a TCP
    /// handshake, a backend process fork and authentication (tens of milliseconds across
    /// a network), and a statement is planned and goes through the buffer cache where a
    /// Redis command is a hash lookup.
    ///
    /// ```
    /// let builder = cachemacro_runtime::SqlStore::builder("postgres://app@127.0.0.1/shop");
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        StoreBuilder::with_options(
            SqlOptions {
                url: url.into(),
                table: DEFAULT_TABLE.to_owned(),
                max_entries: None,
                cull_frequency: 3,
                cull_every: 100,
                create_table: false,
            },
            NetworkSettings {
                connect_timeout: std::time::Duration::from_millis(500),
                operation_timeout: std::time::Duration::from_millis(250),
                pool_size: 10,
            },
        )
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
    /// let store = SqlStore::new("postgres://app@127.0.0.1/shop")?;
    /// sql::migrate(&store.pool()?).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> Result<PgPool, StoreError> {
        self.backend().pool()
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
    /// let store = SqlStore::new("postgres://app@127.0.0.1/shop")?;
    /// let deleted = store.cull()?;
    /// println!("{deleted} expired rows deleted");
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn cull(&self) -> Result<u64, StoreError> {
        self.backend().cull()
    }
}

impl<C: Codec> SqlStoreBuilder<C> {
    /// The cache table, `name` or `schema.name` (default [`DEFAULT_TABLE`]).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.options.table = table.into();
        self
    }

    /// A bound on the rows of the whole table (every namespace in it), as Django's
    /// `MAX_ENTRIES`: when a cull finds more, it deletes a
    /// [`cull_frequency`](Self::cull_frequency) share of them. Checked every
    /// [`cull_every`](Self::cull_every) writes with a `count(*)`, so the table can
    /// exceed it by that many writes in between.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.options.max_entries = Some(entries);
        self
    }

    /// Over [`max_entries`](Self::max_entries), a cull deletes `1 / frequency` of the
    /// rows (at least down to the bound), those closest to expiring first; Django's
    /// `CULL_FREQUENCY`, default 3.
    pub fn cull_frequency(mut self, frequency: u64) -> Self {
        self.options.cull_frequency = frequency.max(1);
        self
    }

    /// Every `writes` writes, one batch of at most 1 000 expired rows is deleted (and
    /// [`max_entries`](Self::max_entries) enforced) in the background; 0 turns it off,
    /// leaving [`SqlStore::cull`] to a periodic job.
    pub fn cull_every(mut self, writes: u64) -> Self {
        self.options.cull_every = writes;
        self
    }

    /// Whether the store creates its table (and index) if missing, once, before its
    /// first statement, as [`migrate_table`] does. Off by default: schema changes
    /// usually belong to the application's migrations, and the database role that
    /// serves requests may not be allowed to make them.
    pub fn create_table(mut self, create: bool) -> Self {
        self.options.create_table = create;
        self
    }

    /// The store. Fails only on an invalid URL or table name: nothing is connected
    /// until first use.
    pub fn build(self) -> Result<SqlStore<C>, StoreError> {
        let connect_options = PgConnectOptions::from_str(&self.options.url)
            .map_err(|error| StoreError::Unavailable(format!("invalid PostgreSQL URL: {error}")))?;
        let table = TableName::parse(&self.options.table)?;
        let settings = Settings {
            connect_timeout: self.network.connect_timeout,
            operation_timeout: self.network.operation_timeout,
            pool_size: u32::try_from(self.network.pool_size).unwrap_or(u32::MAX),
            max_entries: self.options.max_entries,
            cull_frequency: self.options.cull_frequency,
            cull_every: self.options.cull_every,
            create_table: self.options.create_table,
        };
        let backend = Postgres {
            runtime: Arc::new(OwnRuntime::new("cachemacro-sql")),
            engine: Arc::new(Engine::new(connect_options, table, settings)),
        };
        Ok(self.finish(backend))
    }
}

impl Postgres {
    fn pool(&self) -> Result<PgPool, StoreError> {
        // The pool spawns its connection tasks on the runtime it is created from: ours.
        let _context = self.runtime.handle()?.enter();
        Ok(self.engine.pool().clone())
    }

    fn cull(&self) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            match self.runtime.block_on(Arc::clone(&self.engine).cull())?? {
                0 => return Ok(deleted),
                batch => deleted += batch,
            }
        }
    }
}

impl Backend for Postgres {
    fn describe(&self, _: usize) -> String {
        let options = &self.engine.connect_options;
        format!(
            "PostgreSQL at {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        )
    }

    fn execute(&self, op: Op) -> Result<Reply, StoreError> {
        self.runtime
            .block_on(Arc::clone(&self.engine).perform(op))?
    }

    async fn execute_async(&self, op: Op) -> Result<Reply, StoreError> {
        self.runtime
            .run(Arc::clone(&self.engine).perform(op))
            .await?
    }

    /// Expired rows deleted by culls (`expirations`) and rows culled over `max_entries`
    /// (`evictions`) by this store, in every namespace; `entries` is not counted.
    fn stats(&self, _: &[u8]) -> StoreStats {
        self.engine.stats()
    }
}

impl fmt::Debug for Postgres {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.engine.settings;
        formatter
            .debug_struct("Postgres")
            .field("server", &self.describe(0))
            .field("table", &self.engine.table.quoted)
            .field("connect_timeout", &settings.connect_timeout)
            .field("operation_timeout", &settings.operation_timeout)
            .finish_non_exhaustive()
    }
}
