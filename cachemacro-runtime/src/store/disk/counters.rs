//! What this process's writes removed from the file, counted per namespace.
//!
//! A write removes other namespaces' entries too (the expiry sweep and `max_bytes`
//! eviction take whatever heads the expiry order), so each removal is credited to the
//! namespace in its key, whoever wrote.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::encoded::backend::namespace_of;

/// Why a write removed an entry it was not asked to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    /// Taken to keep the file within `max_bytes`.
    Evicted,
    /// Its time to live had run out.
    Expired,
}

/// The removals of one namespace since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct NamespaceRemovals {
    pub(super) evictions: u64,
    pub(super) expirations: u64,
}

/// The removals of every namespace, keyed by `<prefix>:<namespace>:`.
#[derive(Debug, Default)]
pub(super) struct RemovalCounters {
    namespaces: Mutex<HashMap<Vec<u8>, NamespaceRemovals>>,
}

impl RemovalCounters {
    /// Counts the removals of one committed write.
    pub(super) fn record(&self, removed: &[(Vec<u8>, Removal)]) {
        if removed.is_empty() {
            return;
        }
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        for (key, cause) in removed {
            let namespace = namespace_of(key);
            let counters = match namespaces.get_mut(namespace) {
                Some(counters) => counters,
                None => namespaces.entry(namespace.to_vec()).or_default(),
            };
            match cause {
                Removal::Evicted => counters.evictions += 1,
                Removal::Expired => counters.expirations += 1,
            }
        }
    }

    /// The removals counted for `namespace` (`<prefix>:<namespace>:`).
    pub(super) fn of(&self, namespace: &[u8]) -> NamespaceRemovals {
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        namespaces.get(namespace).copied().unwrap_or_default()
    }
}
