//! Signed 64-bit counters on memcached's unsigned ones.
//!
//! Memcached counts in `u64`: `incr` wraps past `u64::MAX`, `decr` stops at 0, and a
//! negative number is not a counter to it at all. The store's counters are `i64`, the
//! same on every backend, so:
//!
//! * a non-negative delta is memcached's own `incr` (atomic, one round trip), as long as
//!   the result stays within `i64`; past it the increment is taken back and the answer is
//!   [`StoreError::Overflow`];
//! * a negative delta, or a counter stored negative, is a compare-and-set loop on the
//!   decimal text, which keeps the counter's remaining time to live;
//! * a missing counter is created with `add` of the delta's text, and the whole step is
//!   retried when another client created it first.

use super::text_protocol::{Fault, Incremented, StorageCommand, StoreReply, TextConnection};
use crate::StoreError;

/// Rounds lost to other writers before a counter update gives up.
const ATTEMPTS: usize = 64;

/// What one round of an update came to.
enum Round {
    Counted(Option<i64>),
    /// Another client changed the key in between: go again.
    Lost,
    /// The key holds something `incr` cannot count (a negative number, or no number).
    ReadModifyWrite,
}

/// Adds `delta` to the counter under `key`; a missing counter starts at 0 when `create`
/// and stays missing (`None`) otherwise.
pub(super) fn add_to_counter(
    connection: &mut TextConnection,
    key: &str,
    delta: i64,
    create: bool,
) -> Result<Option<i64>, Fault> {
    for _ in 0..ATTEMPTS {
        let mut round = match u64::try_from(delta) {
            Ok(amount) => increment(connection, key, amount, create)?,
            Err(_) => Round::ReadModifyWrite,
        };
        if let Round::ReadModifyWrite = round {
            round = read_modify_write(connection, key, delta, create)?;
        }
        match round {
            Round::Counted(counted) => return Ok(counted),
            Round::Lost | Round::ReadModifyWrite => {}
        }
    }
    Err(contended(key))
}

fn increment(
    connection: &mut TextConnection,
    key: &str,
    amount: u64,
    create: bool,
) -> Result<Round, Fault> {
    match connection.incr(key, amount)? {
        Incremented::Counted(counted) => match i64::try_from(counted) {
            Ok(counted) => Ok(Round::Counted(Some(counted))),
            Err(_) => {
                take_back(connection, key, amount)?;
                Err(Fault::Store(StoreError::Overflow))
            }
        },
        Incremented::NotFound if create => create_at(connection, key, amount as i64),
        Incremented::NotFound => Ok(Round::Counted(None)),
        Incremented::NotACounter => Ok(Round::ReadModifyWrite),
    }
}

fn read_modify_write(
    connection: &mut TextConnection,
    key: &str,
    delta: i64,
    create: bool,
) -> Result<Round, Fault> {
    let Some(found) = connection.get_for_update(key)? else {
        if create {
            return create_at(connection, key, delta);
        }
        return Ok(Round::Counted(None));
    };
    let current = signed_counter(&found.value)?;
    let next = current
        .checked_add(delta)
        .ok_or(Fault::Store(StoreError::Overflow))?;
    let written = connection.store(
        StorageCommand::Cas(found.unique),
        key,
        next.to_string().as_bytes(),
        found.expiry,
    )?;
    Ok(match written {
        StoreReply::Stored => Round::Counted(Some(next)),
        _ => Round::Lost,
    })
}

/// A missing counter created at `value`, unless another client created it first.
fn create_at(connection: &mut TextConnection, key: &str, value: i64) -> Result<Round, Fault> {
    let added = connection.store(StorageCommand::Add, key, value.to_string().as_bytes(), 0)?;
    Ok(match added {
        StoreReply::Stored => Round::Counted(Some(value)),
        _ => Round::Lost,
    })
}

/// Takes back an `incr` of `amount` that went past `i64::MAX`. Not with `decr`, which
/// pads a shorter result with spaces in place: the counter is written back as plain
/// decimal text, as it was.
fn take_back(connection: &mut TextConnection, key: &str, amount: u64) -> Result<(), Fault> {
    for _ in 0..ATTEMPTS {
        let Some(found) = connection.get_for_update(key)? else {
            return Ok(()); // deleted meanwhile: nothing left to take back
        };
        let Some(before) = unsigned_counter(&found.value).and_then(|n| n.checked_sub(amount))
        else {
            return Ok(()); // overwritten meanwhile: the increment is gone with it
        };
        let written = connection.store(
            StorageCommand::Cas(found.unique),
            key,
            before.to_string().as_bytes(),
            found.expiry,
        )?;
        if written == StoreReply::Stored {
            return Ok(());
        }
    }
    Err(contended(key))
}

/// The decimal text of a counter, without the spaces memcached's `decr` pads it with.
fn counter_text(bytes: &[u8]) -> Option<&str> {
    let end = bytes
        .iter()
        .rposition(|byte| *byte != b' ')
        .map_or(0, |at| at + 1);
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    (!digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())).then_some(text)
}

fn signed_counter(bytes: &[u8]) -> Result<i64, Fault> {
    counter_text(bytes)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            Fault::Store(StoreError::Corrupt(format!(
                "memcached holds {:?} where a signed 64-bit counter was due",
                String::from_utf8_lossy(bytes)
            )))
        })
}

fn unsigned_counter(bytes: &[u8]) -> Option<u64> {
    counter_text(bytes)?.parse().ok()
}

fn contended(key: &str) -> Fault {
    Fault::Store(StoreError::Other(
        format!("the counter {key} changed under {ATTEMPTS} updates in a row").into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_through_decr_padding_and_reject_what_is_not_a_number() {
        assert_eq!(signed_counter(b"9 ").unwrap(), 9);
        assert_eq!(signed_counter(b"-12").unwrap(), -12);
        assert_eq!(signed_counter(b"9223372036854775807").unwrap(), i64::MAX);
        for garbage in [
            &b""[..],
            b"-",
            b" 1",
            b"1x",
            b"\x92\x01",
            b"9223372036854775808",
        ] {
            assert!(
                matches!(
                    signed_counter(garbage),
                    Err(Fault::Store(StoreError::Corrupt(_)))
                ),
                "{garbage:?}"
            );
        }
        assert_eq!(unsigned_counter(b"9223372036854775808"), Some(1 << 63));
        assert_eq!(unsigned_counter(b"-1"), None);
    }
}
