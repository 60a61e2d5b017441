//! The file format: three tables, the header in front of every value, and the order in
//! which entries expire and are evicted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition};

use super::error::fault;
use crate::StoreError;

/// Rendered key -> header followed by the value's bytes.
pub(super) const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// `(expiry or u64::MAX, sequence)` -> rendered key, every entry once.
pub(super) const EXPIRY_ORDER: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("expiry_order");
/// The format, the next sequence number and the running total of stored bytes.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const FORMAT: u64 = 1;
const META_FORMAT: &str = "format";
pub(super) const META_BYTES: &str = "stored_bytes";
pub(super) const META_NEXT_SEQUENCE: &str = "next_sequence";

/// Expiry and sequence number in front of every stored value.
pub(super) const HEADER_LEN: usize = 16;

/// The one file of a store's directory.
pub(super) const FILE_NAME: &str = "cache.redb";

/// Creates the tables of a new file, and recomputes the byte total if it is missing.
pub(super) fn prepare(db: &Database) -> Result<(), StoreError> {
    let write = db.begin_write().map_err(fault)?;
    {
        let entries = write.open_table(ENTRIES).map_err(fault)?;
        write.open_table(EXPIRY_ORDER).map_err(fault)?;
        let mut meta = write.open_table(META).map_err(fault)?;
        let format = meta.get(META_FORMAT).map_err(fault)?.map(|f| f.value());
        match format {
            Some(FORMAT) => {}
            None => {
                meta.insert(META_FORMAT, FORMAT).map_err(fault)?;
            }
            Some(other) => {
                return Err(StoreError::Other(
                    format!("disk cache format {other} is not supported (expected {FORMAT})")
                        .into(),
                ))
            }
        }
        if meta.get(META_BYTES).map_err(fault)?.is_none() {
            let mut total = 0u64;
            for entry in entries.iter().map_err(fault)? {
                let (key, value) = entry.map_err(fault)?;
                total += (key.value().len() + value.value().len()) as u64;
            }
            meta.insert(META_BYTES, total).map_err(fault)?;
        }
    }
    write.commit().map_err(fault)
}

/// What a key holds, as far as a reader is concerned.
pub(super) enum Lookup {
    Absent,
    Expired,
    Live(Vec<u8>),
}

/// The header of an entry: expiry in wall-clock milliseconds since the Unix epoch (`0`:
/// never) and write sequence number, both little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) expires_at: u64,
    pub(super) sequence: u64,
}

impl Header {
    /// The stored form of an entry: this header followed by `value`.
    pub(super) fn with_value(self, value: &[u8]) -> Vec<u8> {
        let mut stored = Vec::with_capacity(HEADER_LEN + value.len());
        stored.extend_from_slice(&self.expires_at.to_le_bytes());
        stored.extend_from_slice(&self.sequence.to_le_bytes());
        stored.extend_from_slice(value);
        stored
    }

    /// This entry's position in `expiry_order`: entries without expiry sort after every
    /// expiring one, oldest written first.
    pub(super) fn order_key(self) -> (u64, u64) {
        let expiry = if self.expires_at == 0 {
            u64::MAX
        } else {
            self.expires_at
        };
        (expiry, self.sequence)
    }

    pub(super) fn is_expired(self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }
}

/// Splits a stored entry into its header and value. Too short to hold a header is
/// corrupt (never written by this store).
pub(super) fn split_entry(stored: &[u8]) -> Result<(Header, &[u8]), StoreError> {
    if stored.len() < HEADER_LEN {
        return Err(StoreError::Corrupt(format!(
            "a disk cache entry of {} bytes is shorter than its header",
            stored.len()
        )));
    }
    let (header, value) = stored.split_at(HEADER_LEN);
    let expires_at = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let sequence = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    Ok((
        Header {
            expires_at,
            sequence,
        },
        value,
    ))
}

/// What a reader makes of a stored entry at `now`.
pub(super) fn classify(stored: &[u8], now: u64) -> Result<Lookup, StoreError> {
    let (header, value) = split_entry(stored)?;
    Ok(if header.is_expired(now) {
        Lookup::Expired
    } else {
        Lookup::Live(value.to_vec())
    })
}

/// The stored expiry of an entry written at `now` with `ttl` (`None`: never).
pub(super) fn expiry_at(now: u64, ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
    }
}

/// Wall-clock time, so that a TTL keeps running while no process has the file open.
pub(super) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
