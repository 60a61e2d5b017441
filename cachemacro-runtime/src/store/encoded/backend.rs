//! The byte-level contract between [`EncodedStore`](super::EncodedStore) and a backend.
//!
//! A backend knows its wire protocol or file format and nothing else: it receives keys that
//! are already rendered (`<prefix>:<namespace>:<version>:<key>`) and values that are already
//! encoded, and answers with bytes. Codec, key space, namespaces, versions, fail-fast and
//! fault logging are the adapter's, written once for every backend.

use std::future::Future;
use std::time::Duration;

use super::bridge;
use crate::store::api::CasToken;
use crate::store::api::CasTokenRepr;
use crate::store::{StoreError, StoreStats};

/// One operation on encoded keys and values.
///
/// Keys are the full rendered key: everything up to the key's third `:` is its key space
/// (`<prefix>:<namespace>:<version>:`, with `:` escaped inside the parts), the rest the
/// encoded key itself. A backend that needs the namespace (to clear it, or to count per
/// namespace) finds it with [`namespace_of`].
///
/// ```
/// use cachemacro_runtime::backend::Op;
///
/// let op = Op::Incr { key: b"bookshop:views:1:/books/312".to_vec(), delta: 1, create: true };
/// assert_eq!(op.name(), "incr");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op {
    /// The value under `key`. Answer: [`Reply::Value`].
    Get { key: Vec<u8> },
    /// The values under `keys`, in order. Answer: [`Reply::Values`].
    GetMany { keys: Vec<Vec<u8>> },
    /// Store `value` under `key`, expiring after `ttl` (`None`: never). Answer: [`Reply::Done`].
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    /// [`Op::Set`] for each entry. Answer: [`Reply::Done`].
    SetMany {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        ttl: Option<Duration>,
    },
    /// Store only if `key` holds nothing; atomic. Answer: [`Reply::Applied`].
    Add {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    /// Remove `key`. Answer: [`Reply::Applied`] (whether it existed).
    Delete { key: Vec<u8> },
    /// Remove every key. Answer: [`Reply::Count`] (how many existed).
    DeleteMany { keys: Vec<Vec<u8>> },
    /// Set the expiry of an existing entry. Answer: [`Reply::Applied`] (whether it existed).
    Touch { key: Vec<u8>, ttl: Option<Duration> },
    /// Add `delta` to the signed 64-bit counter under `key`, atomically; a missing counter
    /// starts at 0 when `create`, and stays missing otherwise. A result outside `i64` is
    /// [`StoreError::Overflow`] and leaves the counter as it was. Answer: [`Reply::Counter`]
    /// (`None`: missing and not created).
    Incr {
        key: Vec<u8>,
        delta: i64,
        create: bool,
    },
    /// The value under `key` with a token for [`Op::Cas`]. Answer: [`Reply::Versioned`].
    Gets { key: Vec<u8> },
    /// Store only if `key` still holds what the `Gets` that issued `token` saw; atomic.
    /// Answer: [`Reply::Applied`].
    Cas {
        key: Vec<u8>,
        value: Vec<u8>,
        token: CasToken,
        ttl: Option<Duration>,
    },
    /// Remove every key of the namespace `namespace` (`<prefix>:<namespace>:`, every
    /// version). Answer: [`Reply::Done`].
    Clear { namespace: Vec<u8> },
    /// Move the entry under `from` to `to`, keeping its remaining time to live. Answer:
    /// [`Reply::Applied`] (whether `from` held anything).
    Move { from: Vec<u8>, to: Vec<u8> },
}

impl Op {
    /// The operation's name, for logs and errors.
    ///
    /// ```
    /// use cachemacro_runtime::backend::Op;
    ///
    /// assert_eq!(Op::Get { key: b"k".to_vec() }.name(), "get");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Op::Get { .. } => "get",
            Op::GetMany { .. } => "get_many",
            Op::Set { .. } => "set",
            Op::SetMany { .. } => "set_many",
            Op::Add { .. } => "add",
            Op::Delete { .. } => "delete",
            Op::DeleteMany { .. } => "delete_many",
            Op::Touch { .. } => "touch",
            Op::Incr { .. } => "incr",
            Op::Gets { .. } => "gets",
            Op::Cas { .. } => "cas",
            Op::Clear { .. } => "clear",
            Op::Move { .. } => "move",
        }
    }

    /// The keys the operation reads or writes; empty for [`Op::Clear`], which reaches the
    /// servers of [`Backend::clear_route`].
    ///
    /// ```
    /// use cachemacro_runtime::backend::Op;
    ///
    /// let op = Op::Move { from: b"a".to_vec(), to: b"b".to_vec() };
    /// assert_eq!(op.keys(), [b"a".as_slice(), b"b".as_slice()]);
    /// ```
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Op::Get { key }
            | Op::Set { key, .. }
            | Op::Add { key, .. }
            | Op::Delete { key }
            | Op::Touch { key, .. }
            | Op::Incr { key, .. }
            | Op::Gets { key }
            | Op::Cas { key, .. } => vec![key],
            Op::GetMany { keys } | Op::DeleteMany { keys } => {
                keys.iter().map(Vec::as_slice).collect()
            }
            Op::SetMany { entries, .. } => entries.iter().map(|(key, _)| key.as_slice()).collect(),
            Op::Move { from, to } => vec![from, to],
            Op::Clear { .. } => Vec::new(),
        }
    }
}

/// A backend's answer to an [`Op`]; which variant answers which operation is given there.
///
/// ```
/// use cachemacro_runtime::backend::{Op, Reply};
///
/// // What a backend answers a delete: whether the key existed.
/// fn delete(op: &Op, existed: bool) -> Reply {
///     assert!(matches!(op, Op::Delete { .. }));
///     Reply::Applied(existed)
/// }
/// assert_eq!(delete(&Op::Delete { key: b"k".to_vec() }, true), Reply::Applied(true));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// The operation succeeded and has nothing to say.
    Done,
    /// Whether a conditional operation applied (or the key existed).
    Applied(bool),
    /// How many keys the operation found.
    Count(usize),
    /// The bytes under one key, if any.
    Value(Option<Vec<u8>>),
    /// The bytes under each key, in order.
    Values(Vec<Option<Vec<u8>>>),
    /// A counter's new value; `None` when it was missing and not created.
    Counter(Option<i64>),
    /// The bytes under a key with their compare-and-set token.
    Versioned(Option<(Vec<u8>, CasToken)>),
}

/// A store's byte-level engine: a server protocol, a file format, a database table.
///
/// Implement [`execute`](Backend::execute) in the backend's native mode. A blocking backend
/// (a file, a synchronous client) implements only `execute`; the default
/// [`execute_async`](Backend::execute_async) moves it to tokio's blocking pool, so async
/// callers never block their executor. A backend with a native async client implements
/// both, the blocking one through a runtime of its own if it has no blocking client
/// ([`OwnRuntime`](super::bridge::OwnRuntime)).
///
/// [`EncodedStore`](super::EncodedStore) turns any backend into a typed [`Store`] and
/// [`CacheApi`] with every call in both modes:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use cachemacro_runtime::backend::{Backend, Op, Reply};
/// use cachemacro_runtime::{EncodedStore, StoreBuilder};
/// use cachemacro_runtime::{CacheApi, Store, StoreError};
///
/// /// Entries in a process-wide map, without expiry: enough to show the contract.
/// #[derive(Clone, Default)]
/// struct MapBackend(Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>);
///
/// impl Backend for MapBackend {
///     fn execute(&self, op: Op) -> Result<Reply, StoreError> {
///         let mut map = self.0.lock().unwrap();
///         Ok(match op {
///             Op::Get { key } => Reply::Value(map.get(&key).cloned()),
///             Op::Set { key, value, .. } => {
///                 map.insert(key, value);
///                 Reply::Done
///             }
///             Op::Delete { key } => Reply::Applied(map.remove(&key).is_some()),
///             Op::Clear { namespace } => {
///                 map.retain(|key, _| !key.starts_with(&namespace));
///                 Reply::Done
///             }
///             other => return Err(StoreError::Unsupported(other.name())),
///         })
///     }
/// }
///
/// let store: EncodedStore<MapBackend> = StoreBuilder::over(MapBackend::default()).build()?;
/// store.insert("EC1A 1BB".to_owned(), vec!["Angel".to_owned()], None)?;
/// assert_eq!(store.get(&"EC1A 1BB".to_owned())?, Some(vec!["Angel".to_owned()]));
/// assert!(matches!(
///     CacheApi::<String, i64>::incr(&store, &"hits".to_owned(), 1),
///     Err(StoreError::Unsupported("incr"))
/// ));
/// # Ok::<(), StoreError>(())
/// ```
///
/// [`Store`]: crate::Store
/// [`CacheApi`]: crate::CacheApi
pub trait Backend: Clone + Send + Sync + 'static {
    /// How many servers the backend spreads keys over; the adapter keeps one fail-fast
    /// state per server.
    fn servers(&self) -> usize {
        1
    }

    /// The server (`0..servers()`) that holds `key`. Must not do I/O.
    fn route(&self, key: &[u8]) -> usize {
        let _ = key;
        0
    }

    /// The servers (`0..servers()`) that [`Op::Clear`] of `namespace` reaches: every one
    /// by default; a backend that clears a namespace on one server (memcached bumps a
    /// version counter that lives on one of them) names it, so that the other servers'
    /// health neither fails the call nor is blamed for it. Must not do I/O.
    fn clear_route(&self, namespace: &[u8]) -> Vec<usize> {
        let _ = namespace;
        (0..self.servers()).collect()
    }

    /// A short description of server `server`, for logs (`127.0.0.1:6379`).
    fn describe(&self, server: usize) -> String {
        format!("server {server}")
    }

    /// Runs `op`, blocking the calling thread until it is answered. Must be bounded in
    /// time: a server that does not answer is a [`StoreError::Timeout`].
    fn execute(&self, op: Op) -> Result<Reply, StoreError>;

    /// Runs `op` without blocking the executor. The default runs
    /// [`execute`](Backend::execute) on tokio's blocking pool.
    fn execute_async(&self, op: Op) -> impl Future<Output = Result<Reply, StoreError>> + Send {
        bridge::on_blocking_pool(self.clone(), op)
    }

    /// The backend's own counters for the namespace `namespace` (`<prefix>:<namespace>:`).
    fn stats(&self, namespace: &[u8]) -> StoreStats {
        let _ = namespace;
        StoreStats::default()
    }
}

/// The namespace part of a rendered key: everything up to and including its second `:`.
///
/// ```
/// use cachemacro_runtime::backend::namespace_of;
///
/// assert_eq!(namespace_of(b"app:books%3A%3Anearby:1:\x92\xa3EC1"), b"app:books%3A%3Anearby:");
/// ```
pub fn namespace_of(key: &[u8]) -> &[u8] {
    let end = key
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b':')
        .nth(1)
        .map_or(key.len(), |(at, _)| at + 1);
    &key[..end]
}

/// The key space of a rendered key (`<prefix>:<namespace>:<version>:`) and the encoded key
/// after it.
///
/// ```
/// use cachemacro_runtime::backend::split_key;
///
/// assert_eq!(split_key(b"app:books:1:\x92:x"), (&b"app:books:1:"[..], &b"\x92:x"[..]));
/// ```
pub fn split_key(key: &[u8]) -> (&[u8], &[u8]) {
    let end = key
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b':')
        .nth(2)
        .map_or(0, |(at, _)| at + 1);
    key.split_at(end)
}

impl CasToken {
    /// A token that is the exact bytes a key held (empty: it held nothing); what backends
    /// without a native CAS id issue, comparing bytes in their atomic step.
    ///
    /// ```
    /// use cachemacro_runtime::CasToken;
    ///
    /// let token = CasToken::from_bytes(b"10".to_vec());
    /// assert_eq!(token.as_bytes(), Some(&b"10"[..]));
    /// ```
    pub fn from_bytes(bytes: Vec<u8>) -> CasToken {
        CasToken(CasTokenRepr::Bytes(bytes))
    }

    /// The bytes of a token made by [`from_bytes`](CasToken::from_bytes).
    ///
    /// ```
    /// use cachemacro_runtime::CasToken;
    ///
    /// assert_eq!(CasToken::from_unique(7).as_bytes(), None);
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            CasTokenRepr::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// A token that is a server's compare-and-set id (memcached's CAS unique).
    ///
    /// ```
    /// use cachemacro_runtime::CasToken;
    ///
    /// assert_eq!(CasToken::from_unique(7).unique(), Some(7));
    /// ```
    pub fn from_unique(unique: u64) -> CasToken {
        CasToken(CasTokenRepr::Version(unique))
    }

    /// The id of a token made by [`from_unique`](CasToken::from_unique).
    ///
    /// ```
    /// use cachemacro_runtime::CasToken;
    ///
    /// assert_eq!(CasToken::from_bytes(Vec::new()).unique(), None);
    /// ```
    pub fn unique(&self) -> Option<u64> {
        match &self.0 {
            CasTokenRepr::Version(unique) => Some(*unique),
            _ => None,
        }
    }
}
