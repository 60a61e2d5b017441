//! [`OpenFile`]: the redb file of one directory, its read snapshots and its write
//! transactions.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase};

use super::counters::{NamespaceRemovals, RemovalCounters};
use super::error::fault;
use super::layout::{classify, now_millis, prepare, Lookup, ENTRIES, FILE_NAME, META, META_BYTES};
use super::transaction::WriteBatch;
use crate::StoreError;

/// Whether a write is fsync'd before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Commit {
    /// Every write the caller asked for: it survives a crash once it has returned.
    Durable,
    /// Deleting entries a read found expired: losing that in a crash only leaves expired
    /// entries to be deleted later, not worth an fsync on the read path.
    Lazy,
}

/// The open file and the limits every write applies.
pub(super) struct OpenFile {
    db: Database,
    dir: PathBuf,
    max_bytes: Option<u64>,
    sweep_batch: usize,
    removals: RemovalCounters,
}

impl OpenFile {
    /// Creates `dir` if needed and opens (or creates) the file in it; redb repairs a
    /// file left behind by a crashed process here.
    pub(super) fn open(
        dir: PathBuf,
        max_bytes: Option<u64>,
        sweep_batch: usize,
    ) -> Result<OpenFile, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot create the disk cache directory {}: {error}",
                dir.display()
            ))
        })?;
        let db = Database::create(dir.join(FILE_NAME)).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                "the disk cache in {} is already open in another process, or by another \
                 DiskStore in this one (clone that store instead of opening it twice)",
                dir.display()
            )),
            other => StoreError::Unavailable(format!(
                "cannot open the disk cache in {}: {other}",
                dir.display()
            )),
        })?;
        prepare(&db)?;
        Ok(OpenFile {
            db,
            dir,
            max_bytes,
            sweep_batch,
            removals: RemovalCounters::default(),
        })
    }

    /// The file itself, for tests that write bytes this store never would.
    #[cfg(test)]
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    pub(super) fn sweep_batch(&self) -> usize {
        self.sweep_batch
    }

    /// Bytes held by the file's entries (keys, values and headers), from the running total.
    pub(super) fn stored_bytes(&self) -> Result<u64, StoreError> {
        let read = self.db.begin_read().map_err(fault)?;
        let meta = read.open_table(META).map_err(fault)?;
        let bytes = meta.get(META_BYTES).map_err(fault)?;
        Ok(bytes.map_or(0, |bytes| bytes.value()))
    }

    /// The entries whose key starts with `prefix` (expired ones not yet deleted
    /// included), with one range scan.
    pub(super) fn count_entries(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let read = self.db.begin_read().map_err(fault)?;
        let entries = read.open_table(ENTRIES).map_err(fault)?;
        let mut count = 0;
        for entry in entries.range(prefix..).map_err(fault)? {
            if !entry.map_err(fault)?.0.value().starts_with(prefix) {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    /// What this process's writes removed from `namespace` since the file was opened.
    pub(super) fn removals(&self, namespace: &[u8]) -> NamespaceRemovals {
        self.removals.of(namespace)
    }

    /// What each of `keys` holds, from one read snapshot.
    pub(super) fn read(&self, keys: &[Vec<u8>]) -> Result<Vec<Lookup>, StoreError> {
        let read = self.db.begin_read().map_err(fault)?;
        let entries = read.open_table(ENTRIES).map_err(fault)?;
        let now = now_millis();
        keys.iter()
            .map(|key| match entries.get(key.as_slice()).map_err(fault)? {
                None => Ok(Lookup::Absent),
                Some(stored) => classify(stored.value(), now),
            })
            .collect()
    }

    /// Runs `operation` in one write transaction, followed by the expiry sweep and the
    /// `max_bytes` eviction, and commits it if anything changed. An error from
    /// `operation` drops the transaction, so the file is left as it was.
    pub(super) fn write<T>(
        &self,
        commit: Commit,
        operation: impl FnOnce(&mut WriteBatch<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut transaction = self.db.begin_write().map_err(fault)?;
        if commit == Commit::Lazy {
            transaction
                .set_durability(Durability::None)
                .map_err(|error| StoreError::Other(Box::new(error)))?;
        }
        let (answer, changed, removed) = {
            let mut batch = WriteBatch::open(&transaction, now_millis())?;
            let answer = operation(&mut batch)?;
            batch.sweep(self.sweep_batch)?;
            if let Some(max_bytes) = self.max_bytes {
                batch.evict_to(max_bytes)?;
            }
            batch.save()?;
            (answer, batch.changed, batch.removed)
        };
        if changed {
            transaction.commit().map_err(fault)?;
            self.removals.record(&removed);
        } else {
            transaction.abort().map_err(fault)?;
        }
        Ok(answer)
    }

    /// Deletes entries a read found expired, if they still are.
    pub(super) fn purge_expired(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(Commit::Lazy, |batch| {
            keys.iter().try_for_each(|key| batch.lookup(key).map(drop))
        })
    }
}
