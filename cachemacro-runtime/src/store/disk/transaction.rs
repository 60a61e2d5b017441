//! [`WriteBatch`]: the tables of one write transaction, and the bookkeeping (byte total,
//! sequence numbers, removals) committed with them, so that a crash can never leave the
//! two out of step.

use redb::{ReadableTable, Table, WriteTransaction};

use super::counters::Removal;
use super::error::fault;
use super::layout::{
    split_entry, Header, ENTRIES, EXPIRY_ORDER, META, META_BYTES, META_NEXT_SEQUENCE,
};
use crate::StoreError;

/// The tables of one write transaction, and the bookkeeping it commits with them.
pub(super) struct WriteBatch<'txn> {
    entries: Table<'txn, &'static [u8], &'static [u8]>,
    order: Table<'txn, (u64, u64), &'static [u8]>,
    meta: Table<'txn, &'static str, u64>,
    stored_bytes: u64,
    next_sequence: u64,
    /// The transaction's one clock reading: every expiry check in it agrees.
    pub(super) now: u64,
    /// Whether anything was written, i.e. whether the transaction needs a commit.
    pub(super) changed: bool,
    /// Entries removed by expiry or eviction rather than by the caller.
    pub(super) removed: Vec<(Vec<u8>, Removal)>,
}

impl<'txn> WriteBatch<'txn> {
    pub(super) fn open(
        transaction: &'txn WriteTransaction,
        now: u64,
    ) -> Result<WriteBatch<'txn>, StoreError> {
        let entries = transaction.open_table(ENTRIES).map_err(fault)?;
        let order = transaction.open_table(EXPIRY_ORDER).map_err(fault)?;
        let meta = transaction.open_table(META).map_err(fault)?;
        let read = |name| -> Result<u64, StoreError> {
            Ok(meta.get(name).map_err(fault)?.map_or(0, |n| n.value()))
        };
        let stored_bytes = read(META_BYTES)?;
        let next_sequence = read(META_NEXT_SEQUENCE)?;
        Ok(WriteBatch {
            entries,
            order,
            meta,
            stored_bytes,
            next_sequence,
            now,
            changed: false,
            removed: Vec::new(),
        })
    }

    /// The live value under `key` with its expiry; an expired entry is deleted and
    /// reported absent.
    pub(super) fn lookup(&mut self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let (header, value) = match self.entries.get(key).map_err(fault)? {
            None => return Ok(None),
            Some(stored) => {
                let (header, value) = split_entry(stored.value())?;
                (header, value.to_vec())
            }
        };
        if header.is_expired(self.now) {
            self.delete(key)?;
            self.removed.push((key.to_vec(), Removal::Expired));
            return Ok(None);
        }
        Ok(Some((header.expires_at, value)))
    }

    /// Stores `value` under `key`, replacing what was there, expiring at `expires_at`.
    pub(super) fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.delete(key)?;
        let header = Header {
            expires_at,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        let stored = header.with_value(value);
        self.entries.insert(key, stored.as_slice()).map_err(fault)?;
        self.order.insert(header.order_key(), key).map_err(fault)?;
        self.stored_bytes += (key.len() + stored.len()) as u64;
        self.changed = true;
        Ok(())
    }

    /// Deletes the entry and its place in the expiry order; returns whether there was one.
    /// A corrupt entry is deleted too (its orphaned order row is dropped when reached).
    pub(super) fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let header = match self.entries.remove(key).map_err(fault)? {
            None => return Ok(false),
            Some(stored) => {
                let stored = stored.value();
                self.stored_bytes = self
                    .stored_bytes
                    .saturating_sub((key.len() + stored.len()) as u64);
                split_entry(stored).ok().map(|(header, _)| header)
            }
        };
        if let Some(header) = header {
            self.order.remove(header.order_key()).map_err(fault)?;
        }
        self.changed = true;
        Ok(true)
    }

    /// Deletes every entry whose key starts with `prefix`: a namespace's keys are
    /// adjacent, so this is one range scan that touches nothing else.
    pub(super) fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for entry in self.entries.range(prefix..).map_err(fault)? {
            let (key, _) = entry.map_err(fault)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            keys.push(key.value().to_vec());
        }
        for key in keys {
            self.delete(&key)?;
        }
        Ok(())
    }

    /// Deletes at most `limit` expired entries from the head of the expiry order, which
    /// keeps every write's cost bounded however many entries expired meanwhile.
    pub(super) fn sweep(&mut self, limit: usize) -> Result<(), StoreError> {
        for _ in 0..limit {
            if !self.head_is_expired()? {
                break;
            }
            self.pop_head(Removal::Expired)?;
        }
        Ok(())
    }

    /// Removes entries from the head of the expiry order (soonest expiry first, then
    /// entries without expiry, oldest written first) until the total fits `max_bytes`.
    pub(super) fn evict_to(&mut self, max_bytes: u64) -> Result<(), StoreError> {
        while self.stored_bytes > max_bytes {
            let cause = if self.head_is_expired()? {
                Removal::Expired
            } else {
                Removal::Evicted
            };
            if self.pop_head(cause)?.is_none() {
                // Only orphaned bytes are left (a miscount): nothing more to evict.
                self.stored_bytes = 0;
                break;
            }
        }
        Ok(())
    }

    /// Writes the bookkeeping back, if anything changed.
    pub(super) fn save(&mut self) -> Result<(), StoreError> {
        if self.changed {
            self.meta
                .insert(META_BYTES, self.stored_bytes)
                .map_err(fault)?;
            self.meta
                .insert(META_NEXT_SEQUENCE, self.next_sequence)
                .map_err(fault)?;
        }
        Ok(())
    }

    fn head_is_expired(&self) -> Result<bool, StoreError> {
        let head = self.order.first().map_err(fault)?;
        Ok(head.is_some_and(|(position, _)| position.value().0 <= self.now))
    }

    /// Removes the head of the expiry order and its entry (if the entry is still the one
    /// the order row was written for); `None` when the order is empty.
    fn pop_head(&mut self, cause: Removal) -> Result<Option<()>, StoreError> {
        let (position, key) = match self.order.pop_first().map_err(fault)? {
            None => return Ok(None),
            Some((position, key)) => (position.value(), key.value().to_vec()),
        };
        self.changed = true;
        let current = self
            .entries
            .get(key.as_slice())
            .map_err(fault)?
            .and_then(|stored| {
                split_entry(stored.value())
                    .ok()
                    .map(|(header, _)| header.order_key())
            });
        if current == Some(position) {
            let stored = self
                .entries
                .remove(key.as_slice())
                .map_err(fault)?
                .map_or(0, |stored| stored.value().len());
            self.stored_bytes = self
                .stored_bytes
                .saturating_sub((key.len() + stored) as u64);
            self.removed.push((key, cause));
        }
        Ok(Some(()))
    }
}
