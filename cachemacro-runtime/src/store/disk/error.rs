//! redb's errors as store errors.

use crate::StoreError;

/// I/O is [`StoreError::Unavailable`], an outage the adapter's fail-fast skips the file
/// for; anything else (a corrupt page, a bug) is [`StoreError::Other`], which says
/// nothing about whether the next call would work.
pub(super) fn fault(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(error) => StoreError::Unavailable(format!("disk cache I/O error: {error}")),
        other => StoreError::Other(Box::new(other)),
    }
}
