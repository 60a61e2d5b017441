//! The cache table: its name, its `CREATE TABLE` script and the migration that runs it.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, PgPool};

use crate::StoreError;

/// The table [`SqlStore`](crate::SqlStore) and [`migrate`] use unless told otherwise.
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
pub(super) async fn run_migration(
    connection: &mut PgConnection,
    table: &TableName,
) -> sqlx::Result<()> {
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
pub(super) struct TableName {
    /// `"schema"."name"`, safe to splice into SQL.
    pub(super) quoted: String,
    /// `"name_expires_at"`: the index lives in the table's schema.
    pub(super) index: String,
}

impl TableName {
    pub(super) fn parse(name: &str) -> Result<TableName, StoreError> {
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
