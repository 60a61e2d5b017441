//! Each backend operation as reads and write transactions of the file, written once.
//!
//! Every write the caller asks for is one fsync'd transaction, so a batch is all or
//! nothing and the conditional operations (`add`, `cas`, `incr`, the version move) are
//! atomic: redb runs one write transaction at a time.

use std::time::Duration;

use super::file::{Commit, OpenFile};
use super::layout::{expiry_at, Lookup};
use crate::store::api::CasToken;
use crate::store::encoded::backend::{Op, Reply};
use crate::store::StoreError;

/// Runs `op` on `file`. A counter that `incr` creates expires after `counter_ttl`.
pub(super) fn perform(
    file: &OpenFile,
    counter_ttl: Option<Duration>,
    op: Op,
) -> Result<Reply, StoreError> {
    Ok(match op {
        Op::Get { key } => Reply::Value(read(file, vec![key])?.pop().flatten()),
        Op::GetMany { keys } => Reply::Values(read(file, keys)?),
        Op::Gets { key } => Reply::Versioned(
            read(file, vec![key])?
                .pop()
                .flatten()
                .map(|bytes| (bytes.clone(), CasToken::from_bytes(bytes))),
        ),
        Op::Set { key, value, ttl } => {
            file.write(Commit::Durable, |batch| {
                let expires_at = expiry_at(batch.now, ttl);
                batch.put(&key, &value, expires_at)
            })?;
            Reply::Done
        }
        Op::SetMany { entries, ttl } => {
            file.write(Commit::Durable, |batch| {
                let expires_at = expiry_at(batch.now, ttl);
                entries
                    .iter()
                    .try_for_each(|(key, value)| batch.put(key, value, expires_at))
            })?;
            Reply::Done
        }
        Op::Add { key, value, ttl } => Reply::Applied(file.write(Commit::Durable, |batch| {
            if batch.lookup(&key)?.is_some() {
                return Ok(false);
            }
            let expires_at = expiry_at(batch.now, ttl);
            batch.put(&key, &value, expires_at)?;
            Ok(true)
        })?),
        Op::Delete { key } => {
            Reply::Applied(file.write(Commit::Durable, |batch| batch.delete(&key))?)
        }
        Op::DeleteMany { keys } => Reply::Count(file.write(Commit::Durable, |batch| {
            let mut removed = 0;
            for key in &keys {
                removed += usize::from(batch.delete(key)?);
            }
            Ok(removed)
        })?),
        Op::Touch { key, ttl } => Reply::Applied(file.write(Commit::Durable, |batch| {
            let Some((_, value)) = batch.lookup(&key)? else {
                return Ok(false);
            };
            let expires_at = expiry_at(batch.now, ttl);
            batch.put(&key, &value, expires_at)?;
            Ok(true)
        })?),
        Op::Incr { key, delta, create } => {
            Reply::Counter(file.write(Commit::Durable, |batch| {
                let (current, expires_at) = match batch.lookup(&key)? {
                    // An existing counter keeps its expiry.
                    Some((expires_at, bytes)) => (counter(&bytes)?, expires_at),
                    None if create => (0, expiry_at(batch.now, counter_ttl)),
                    None => return Ok(None),
                };
                // An error drops the transaction: an overflow leaves the counter as it was.
                let counted =
                    i64::try_from(current + i128::from(delta)).map_err(|_| StoreError::Overflow)?;
                batch.put(&key, counted.to_string().as_bytes(), expires_at)?;
                Ok(Some(counted))
            })?)
        }
        Op::Cas {
            key,
            value,
            token,
            ttl,
        } => {
            let Some(expected) = token.as_bytes() else {
                return Err(CasToken::foreign());
            };
            Reply::Applied(file.write(Commit::Durable, |batch| {
                // Stored values are never empty, so the empty token means "absent".
                let unchanged = match batch.lookup(&key)? {
                    None => expected.is_empty(),
                    Some((_, current)) => current == expected,
                };
                if unchanged {
                    let expires_at = expiry_at(batch.now, ttl);
                    batch.put(&key, &value, expires_at)?;
                }
                Ok(unchanged)
            })?)
        }
        Op::Clear { namespace } => {
            file.write(Commit::Durable, |batch| batch.delete_prefix(&namespace))?;
            Reply::Done
        }
        // One transaction, so unlike Django's read-write-delete the move is atomic.
        Op::Move { from, to } => Reply::Applied(file.write(Commit::Durable, |batch| {
            let Some((expires_at, value)) = batch.lookup(&from)? else {
                return Ok(false);
            };
            batch.delete(&from)?;
            batch.put(&to, &value, expires_at)?;
            Ok(true)
        })?),
    })
}

/// The live bytes under each key, from one read snapshot; entries found expired are
/// deleted (a miss either way).
fn read(file: &OpenFile, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let lookups = file.read(&keys)?;
    let mut expired = Vec::new();
    let found = keys
        .into_iter()
        .zip(lookups)
        .map(|(key, lookup)| match lookup {
            Lookup::Absent => None,
            Lookup::Expired => {
                expired.push(key);
                None
            }
            Lookup::Live(bytes) => Some(bytes),
        })
        .collect();
    file.purge_expired(&expired)?;
    Ok(found)
}

/// A stored counter: decimal text, as the adapter writes integers. Anything else is
/// corrupt; digits beyond `i64` are read so that the sum can say `Overflow` instead.
fn counter(bytes: &[u8]) -> Result<i128, StoreError> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|_| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
    match text.map(str::parse::<i128>) {
        Some(Ok(counter)) => Ok(counter),
        Some(Err(_)) => Err(StoreError::Overflow),
        None => Err(StoreError::Corrupt(format!(
            "incr needs a decimal integer under the key, found {} bytes that are not one",
            bytes.len()
        ))),
    }
}
