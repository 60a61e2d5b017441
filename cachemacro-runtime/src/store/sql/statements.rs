//! The SQL of every operation on one cache table, rendered once when the store is built.
//!
//! Each operation is one statement, atomic in PostgreSQL: `add` and `incr` are
//! `INSERT .. ON CONFLICT DO UPDATE`, `cas` an `UPDATE .. WHERE value = <the bytes read>`,
//! moving an entry to another version a `DELETE .. RETURNING` feeding an `INSERT`, and the
//! batched operations one statement over arrays.

use std::sync::Arc;

use super::schema::TableName;

/// `now` in the expiry column's unit, on the database server's clock, so that
/// application servers with skewed clocks agree on what has expired.
const NOW_MS: &str = "(extract(epoch from statement_timestamp()) * 1000)::bigint";

/// Whether a counter's next value (a `numeric`, which cannot overflow) fits a `bigint`.
const FITS_I64: &str = "BETWEEN -9223372036854775808 AND 9223372036854775807";

/// Rows one cull deletes at most per statement.
pub(super) const CULL_BATCH: i64 = 1_000;

/// The statements of one table. Parameters are numbered as each field's comment says.
pub(super) struct Statements {
    /// `$1` key: the live value.
    pub(super) get: Arc<str>,
    /// `$1` key, `$2` value, `$3` ttl in ms (`NULL`: never expires).
    pub(super) set: Arc<str>,
    /// As `set`, only where no live row is.
    pub(super) add: Arc<str>,
    /// `$1` key: one row of whether the deleted row was live, or none.
    pub(super) delete: Arc<str>,
    /// `$1` start, `$2` end (exclusive) of a key range.
    pub(super) clear_range: Arc<str>,
    /// `$1` start of a key range that runs to the end.
    pub(super) clear_from: Arc<str>,
    /// `$1` key, `$2` ttl in ms.
    pub(super) touch: Arc<str>,
    /// `$1` key, `$2` delta: the new counter, or no row when it would overflow.
    pub(super) incr: Arc<str>,
    /// `$1` key, `$2` delta: no row when missing, else whether it fits and the counter.
    pub(super) incr_existing: Arc<str>,
    /// `$1` from, `$2` to.
    pub(super) rename: Arc<str>,
    /// `$1` key, `$2` bytes expected, `$3` value, `$4` ttl in ms.
    pub(super) cas: Arc<str>,
    /// `$1` keys: `(key, value)` of the live ones.
    pub(super) get_many: Arc<str>,
    /// `$1` keys, `$2` values (no key twice), `$3` ttl in ms.
    pub(super) set_many: Arc<str>,
    /// `$1` keys: one row per deleted row, of whether it was live.
    pub(super) delete_many: Arc<str>,
    /// `$1` batch size.
    pub(super) cull_expired: Arc<str>,
    pub(super) count: Arc<str>,
    /// `$1` rows to delete.
    pub(super) cull_oldest: Arc<str>,
}

impl Statements {
    pub(super) fn new(table: &TableName) -> Statements {
        let t = &table.quoted;
        let live = format!("(expires_at IS NULL OR expires_at > {NOW_MS})");
        let live_c = format!("(c.expires_at IS NULL OR c.expires_at > {NOW_MS})");
        let upsert = "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                      expires_at = EXCLUDED.expires_at";
        // A counter is decimal text, the codec's form of an integer, so `get` reads it
        // back; an expired one counts as 0. Text that is not an integer fails the cast
        // with a data exception.
        let counter =
            format!("(CASE WHEN {live_c} THEN convert_from(c.value, 'UTF8')::bigint ELSE 0 END)");
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
            delete: sql(format!("DELETE FROM {t} WHERE key = $1 RETURNING {live}")),
            clear_range: sql(format!("DELETE FROM {t} WHERE key >= $1 AND key < $2")),
            clear_from: sql(format!("DELETE FROM {t} WHERE key >= $1")),
            touch: sql(format!(
                "UPDATE {t} SET expires_at = {NOW_MS} + $2::bigint WHERE key = $1 AND {live}"
            )),
            // A missing or expired counter starts at 0 and never expires, a live one keeps
            // its expiry (as Redis' INCRBY does). The sum is checked in `numeric` before
            // anything is written: out of range, the conflict's WHERE leaves the row as
            // it was and nothing is returned.
            incr: sql(format!(
                "INSERT INTO {t} AS c (key, value, expires_at) \
                 VALUES ($1, convert_to($2::bigint::text, 'UTF8'), NULL) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = convert_to(({counter} + $2)::text, 'UTF8'), \
                 expires_at = CASE WHEN {live_c} THEN c.expires_at END \
                 WHERE {counter}::numeric + $2 {FITS_I64} \
                 RETURNING convert_from(value, 'UTF8')::bigint"
            )),
            // The live row, locked, and its next value; written only when it fits. The
            // answer tells "missing" (no row) from "would overflow" (`fits` false).
            incr_existing: sql(format!(
                "WITH found AS (\
                     SELECT c.key, convert_from(c.value, 'UTF8')::bigint::numeric + $2 AS next \
                     FROM {t} AS c WHERE c.key = $1 AND {live_c} FOR UPDATE\
                 ), written AS (\
                     UPDATE {t} AS c SET value = convert_to(found.next::bigint::text, 'UTF8') \
                     FROM found WHERE c.key = found.key AND found.next {FITS_I64}\
                 ) \
                 SELECT next {FITS_I64} AS fits, \
                     CASE WHEN next {FITS_I64} THEN next::bigint END AS counter \
                 FROM found"
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
