//! [`DiskStore`]: a cache in a directory on the local disk that survives restarts.
//!
//! The engine is [redb](https://www.redb.org): pure Rust, ACID, a copy-on-write B-tree
//! whose commits are fsync'd, and an exclusive lock on the file. It was chosen over SQLite
//! (through `rusqlite`) by measurement, in `benches/disk.rs` and BENCHMARKS.md.
//!
//! # Layout
//!
//! One file, `<dir>/cache.redb`, with three tables:
//!
//! * `entries`: key `<prefix>:<namespace>:<version>:<key as MessagePack>` (the key format of the
//!   remote stores), value a 16-byte header — expiry in wall-clock milliseconds since the
//!   Unix epoch (`0`: never) and the entry's write sequence number, both little-endian —
//!   followed by the value's bytes (MessagePack; integers as decimal text, so `incr` reads
//!   them back like any other value). Keys of one namespace are adjacent, so `clear`
//!   removes them with a range scan and touches nothing else.
//! * `expiry_order`: `(expiry or u64::MAX, sequence) -> key`, every entry once. Its head
//!   is the next entry to expire, which makes the expiry sweep a few B-tree pops, and it
//!   is also the eviction order: past `max_bytes`, the entry that expires soonest goes
//!   first, and entries without expiry go last, oldest written first.
//! * `meta`: the file format, the next sequence number and the running total of stored
//!   bytes, updated in the same transaction as the entries they describe, so a crash can
//!   never leave them out of step.
//!
//! # Expiry
//!
//! Expiry is stored with the value, so a TTL keeps running while no process has the store
//! open. An expired entry is a miss; the read that finds it also deletes it (in a commit
//! without fsync: losing that delete in a crash only leaves an expired entry behind), and
//! every write deletes at most `sweep_batch` expired entries from the head of the expiry
//! order. No background thread.
//!
//! # Faults
//!
//! Bytes that do not decode as the value type are [`StoreError::Corrupt`], which
//! `#[memoize]` treats as a miss and overwrites. I/O errors are
//! [`StoreError::Unavailable`]; a directory another process has open is
//! [`StoreError::Unavailable`] naming the directory.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{self, Codec, KeyOptions, KeySpace, MessagePack};
use crate::store::CasTokenRepr;
use crate::{CacheApi, CasToken, Store, StoreError, StoreStats};

const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const EXPIRY_ORDER: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("expiry_order");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const FORMAT: u64 = 1;
const META_FORMAT: &str = "format";
const META_BYTES: &str = "stored_bytes";
const META_NEXT_SEQUENCE: &str = "next_sequence";

/// Expiry and sequence number in front of every stored value.
const HEADER_LEN: usize = 16;

const FILE_NAME: &str = "cache.redb";

/// A [`Store`] in a directory on the local disk: memoized results survive restarts.
///
/// ```
/// use std::path::PathBuf;
/// use cachemacro_runtime::{memoize, DiskStore};
///
/// fn cache_dir() -> PathBuf {
///     std::env::temp_dir().join(format!("cachemacro-doc-disk-{}", std::process::id()))
/// }
///
/// #[memoize(ttl = "1d", store = DiskStore::open(cache_dir()).expect("a writable directory"))]
/// fn nearby_stores(postcode: &str, radius: u32) -> Vec<String> {
///     vec![format!("{postcode} within {radius} km")]
/// }
///
/// // Computed once; the next run of the program reads it back from disk.
/// let shops = nearby_stores("EC1A 1BB", 5);
/// assert_eq!(nearby_stores("EC1A 1BB", 5), shops);
/// assert_eq!(nearby_stores::stats().hits, 1);
/// # std::fs::remove_dir_all(cache_dir()).unwrap();
/// ```
///
/// One process at a time may open a directory: redb locks the file, and a second open —
/// from another process, or a second `open` in the same one — fails with
/// [`StoreError::Unavailable`] naming the directory. Within a process, share one store by
/// cloning it: clones use the same open file, and each memoized function still gets its
/// own namespace.
///
/// ```
/// use std::sync::OnceLock;
/// use cachemacro_runtime::{memoize, DiskStore};
///
/// /// `#[memoize]` evaluates `store = ..` once per function: every function gets a clone
/// /// of the one open store.
/// fn disk_store() -> DiskStore {
///     static STORE: OnceLock<DiskStore> = OnceLock::new();
///     STORE
///         .get_or_init(|| {
///             let dir = std::env::temp_dir()
///                 .join(format!("cachemacro-doc-shared-{}", std::process::id()));
///             DiskStore::open(dir).expect("a writable directory")
///         })
///         .clone()
/// }
///
/// #[memoize(store = disk_store())]
/// fn title(id: u32) -> String {
///     format!("book {id}")
/// }
///
/// #[memoize(store = disk_store())]
/// fn author(id: u32) -> String {
///     format!("author {id}")
/// }
///
/// assert_eq!((title(1), author(1)), ("book 1".to_owned(), "author 1".to_owned()));
/// # std::fs::remove_dir_all(disk_store().dir()).unwrap();
/// ```
///
/// Writes are fsync'd commits (see BENCHMARKS.md for their cost); reads are served from
/// redb's page cache once warm.
pub struct DiskStore<C = MessagePack> {
    codec: Arc<C>,
    shared: Arc<Shared>,
    keys: KeySpace,
    default_ttl: Option<Duration>,
    removals: Arc<RemovalCounters>,
}

/// Settings of a [`DiskStore`]; from [`DiskStore::builder`].
///
/// ```
/// use std::time::Duration;
/// use cachemacro_runtime::DiskStore;
/// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-builder-{}", std::process::id()));
///
/// let store = DiskStore::builder(&dir)
///     .prefix("bookshop")
///     .namespace("stores")
///     .max_bytes(64 * 1024 * 1024)
///     .default_ttl(Duration::from_secs(24 * 60 * 60))
///     .sweep_batch(64)
///     .build()?;
/// assert_eq!(store.dir(), dir.as_path());
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DiskStoreBuilder<C = MessagePack> {
    codec: C,
    dir: PathBuf,
    keys: KeyOptions,
    max_bytes: Option<u64>,
    default_ttl: Option<Duration>,
    sweep_batch: usize,
}

/// What the clones of one store share: the open file and its settings.
struct Shared {
    db: Database,
    dir: PathBuf,
    max_bytes: Option<u64>,
    sweep_batch: usize,
    /// Eviction and expiry counters of each namespace used in this process, found by key
    /// prefix when a write removes somebody else's entries.
    namespaces: Mutex<Vec<(String, Arc<RemovalCounters>)>>,
}

#[derive(Debug, Default)]
struct RemovalCounters {
    evictions: AtomicU64,
    expirations: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Evicted,
    Expired,
}

impl DiskStore {
    /// The store in `dir` (created if missing) with default settings: prefix
    /// `cachemacro`, no size bound, no default TTL, sweep batch 32.
    ///
    /// ```
    /// use cachemacro_runtime::{DiskStore, Store};
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-open-{}", std::process::id()));
    ///
    /// let store = DiskStore::open(&dir)?;
    /// store.insert("EC1A 1BB".to_owned(), 3u32, None)?;
    /// drop(store);
    ///
    /// let reopened = DiskStore::open(&dir)?;
    /// assert_eq!(reopened.get(&"EC1A 1BB".to_owned())?, Some(3u32));
    /// # drop(reopened);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<DiskStore, StoreError> {
        DiskStore::builder(dir).build()
    }

    /// Settings for the store in `dir`; see [`DiskStoreBuilder`].
    pub fn builder(dir: impl AsRef<Path>) -> DiskStoreBuilder {
        DiskStoreBuilder {
            codec: MessagePack,
            dir: dir.as_ref().to_path_buf(),
            keys: KeyOptions::default(),
            max_bytes: None,
            default_ttl: None,
            sweep_batch: 32,
        }
    }
}

impl<C: Codec> DiskStore<C> {
    /// The directory the store lives in.
    ///
    /// ```
    /// use cachemacro_runtime::DiskStore;
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-dir-{}", std::process::id()));
    ///
    /// let store = DiskStore::open(&dir)?;
    /// assert!(store.dir().join("cache.redb").exists());
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Bytes held by the whole file's entries (keys, values and their 16-byte headers;
    /// not redb's own pages), the quantity `max_bytes` bounds.
    ///
    /// ```
    /// use cachemacro_runtime::{DiskStore, Store};
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-bytes-{}", std::process::id()));
    ///
    /// let store = DiskStore::open(&dir)?;
    /// assert_eq!(store.stored_bytes()?, 0);
    /// store.insert(1u32, "a value".to_owned(), None)?;
    /// assert!(store.stored_bytes()? > 16);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        let read = self.shared.db.begin_read().map_err(fault)?;
        let meta = read.open_table(META).map_err(fault)?;
        let bytes = meta.get(META_BYTES).map_err(fault)?;
        Ok(bytes.map_or(0, |bytes| bytes.value()))
    }

    /// Another handle on the same open file, with its keys in `namespace`: how one
    /// process shares a directory between caches that want their own names (clones
    /// handed to `#[memoize]` get the function's name by themselves).
    ///
    /// ```
    /// use cachemacro_runtime::{DiskStore, Store};
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-ns-{}", std::process::id()));
    ///
    /// let books = DiskStore::builder(&dir).namespace("books").build()?;
    /// let authors = books.namespaced("authors");
    /// books.insert(1u32, "Emma".to_owned(), None)?;
    /// authors.insert(1u32, "Austen".to_owned(), None)?;
    /// Store::<u32, String>::clear(&books)?; // this namespace only
    /// assert_eq!(authors.get(&1u32)?, Some("Austen".to_owned()));
    /// # drop((books, authors));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn namespaced(&self, namespace: impl Into<String>) -> DiskStore<C> {
        let keys = self.keys.in_namespace(namespace.into());
        DiskStore {
            codec: Arc::clone(&self.codec),
            shared: Arc::clone(&self.shared),
            removals: self.shared.counters_for(keys.namespace_str()),
            keys,
            default_ttl: self.default_ttl,
        }
    }

    /// The only place values are turned into bytes, with the store's codec.
    fn encode<V: Serialize>(&self, value: &V) -> Result<Vec<u8>, StoreError> {
        codec::encode_value(&*self.codec, value)
    }

    /// The only place bytes are turned back into values.
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, StoreError> {
        codec::decode_value(&*self.codec, bytes)
    }

    fn encode_key<K: Serialize>(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        self.encode_key_in(self.keys.as_str(), key)
    }

    /// The only place keys are turned into bytes: `space` followed by the key.
    fn encode_key_in<K: Serialize>(&self, space: &str, key: &K) -> Result<Vec<u8>, StoreError> {
        codec::encode_key(space, key)
    }

    /// `incr` in one transaction; a missing counter starts at 0 when `create`, and
    /// stays missing (`None`) otherwise.
    fn count<K: Serialize>(
        &self,
        key: &K,
        delta: i64,
        create: bool,
    ) -> Result<Option<i64>, StoreError> {
        let key = self.encode_key(key)?;
        let new_expiry = self.expiry(None);
        self.shared.write(true, |batch| {
            let (current, expires_at) = match batch.lookup(&key)? {
                Some((expires_at, bytes)) => {
                    let current = self.decode::<i64>(&bytes).map_err(|_| {
                        StoreError::Other("incr needs an integer value under the key".into())
                    })?;
                    (current, expires_at)
                }
                None if create => (0, new_expiry),
                None => return Ok(None),
            };
            let counted = current
                .checked_add(delta)
                .ok_or_else(|| StoreError::Other("counter overflow".into()))?;
            batch.put(&key, &self.encode(&counted)?, expires_at)?;
            Ok(Some(counted))
        })
    }

    /// Wall-clock expiry of an entry written now with `ttl` (or the store's default).
    fn expiry(&self, ttl: Option<Duration>) -> u64 {
        expiry_at(now_millis(), ttl.or(self.default_ttl))
    }

    /// The start of this namespace's keys at every version, which `clear` removes and
    /// `stats` counts, and to which removals are credited.
    fn namespace_prefix(&self) -> &[u8] {
        self.keys.namespace_str().as_bytes()
    }
}

impl<C> Clone for DiskStore<C> {
    /// Another handle on the same open file, with the same settings; give it its own
    /// namespace with [`Store::with_namespace`] or let `#[memoize]` do so.
    fn clone(&self) -> Self {
        DiskStore {
            codec: Arc::clone(&self.codec),
            shared: Arc::clone(&self.shared),
            keys: self.keys.clone(),
            default_ttl: self.default_ttl,
            removals: Arc::clone(&self.removals),
        }
    }
}

impl<C: Codec> DiskStoreBuilder<C> {
    codec::key_setters!();

    /// How values are written (default [`MessagePack`]); keys are always MessagePack.
    ///
    /// ```
    /// use cachemacro_runtime::{DiskStore, MessagePack};
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-codec-{}", std::process::id()));
    ///
    /// let store: DiskStore<MessagePack> = DiskStore::builder(&dir).codec(MessagePack).build()?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn codec<D: Codec>(self, codec: D) -> DiskStoreBuilder<D> {
        DiskStoreBuilder {
            codec,
            dir: self.dir,
            keys: self.keys,
            max_bytes: self.max_bytes,
            default_ttl: self.default_ttl,
            sweep_batch: self.sweep_batch,
        }
    }

    /// Bound on the bytes of all entries in the file (keys, values and a 16-byte header
    /// each). A write that goes past it evicts entries in expiry order — soonest expiry
    /// first, then entries without expiry, oldest written first — until the total fits,
    /// in the same transaction. Default: no bound.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Time to live of entries written without one (`#[memoize]` without `ttl`,
    /// [`Store::insert`] with `None`). Default: they never expire.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// At most this many expired entries are deleted by each write, which keeps every
    /// write's cost bounded however many entries expired while the store was closed.
    /// Default 32; `0` leaves expired entries to be deleted when read.
    pub fn sweep_batch(mut self, entries: usize) -> Self {
        self.sweep_batch = entries;
        self
    }

    /// Creates the directory if needed and opens (or creates) the store in it. Fails
    /// with [`StoreError::Unavailable`] if the directory cannot be created, or another
    /// process (or another `DiskStore` of this one) has it open. A store left behind by
    /// a crashed process is repaired by this call.
    pub fn build(self) -> Result<DiskStore<C>, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot create the disk cache directory {}: {error}",
                self.dir.display()
            ))
        })?;
        let db = Database::create(self.dir.join(FILE_NAME)).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                "the disk cache in {} is already open in another process, or by another \
                 DiskStore in this one (clone that store instead of opening it twice)",
                self.dir.display()
            )),
            other => StoreError::Unavailable(format!(
                "cannot open the disk cache in {}: {other}",
                self.dir.display()
            )),
        })?;
        prepare(&db)?;
        let shared = Arc::new(Shared {
            db,
            dir: self.dir,
            max_bytes: self.max_bytes,
            sweep_batch: self.sweep_batch,
            namespaces: Mutex::new(Vec::new()),
        });
        let keys = self.keys.into_key_space();
        let removals = shared.counters_for(keys.namespace_str());
        Ok(DiskStore {
            codec: Arc::new(self.codec),
            shared,
            keys,
            default_ttl: self.default_ttl,
            removals,
        })
    }
}

/// Creates the tables of a new file, and recomputes the byte total if it is missing.
fn prepare(db: &Database) -> Result<(), StoreError> {
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

impl Shared {
    fn counters_for(&self, keyspace: &str) -> Arc<RemovalCounters> {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, counters)) = namespaces.iter().find(|(space, _)| space == keyspace) {
            return Arc::clone(counters);
        }
        let counters = Arc::new(RemovalCounters::default());
        namespaces.push((keyspace.to_owned(), Arc::clone(&counters)));
        counters
    }

    /// Credits each removal to the namespace whose key space is the longest prefix of the
    /// removed key (namespaces nobody in this process uses are not counted).
    fn count_removals(&self, removed: &[(Vec<u8>, Removal)]) {
        if removed.is_empty() {
            return;
        }
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        for (key, cause) in removed {
            let owner = namespaces
                .iter()
                .filter(|(space, _)| key.starts_with(space.as_bytes()))
                .max_by_key(|(space, _)| space.len());
            if let Some((_, counters)) = owner {
                let counter = match cause {
                    Removal::Evicted => &counters.evictions,
                    Removal::Expired => &counters.expirations,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The live value bytes and header under `key`, from a read snapshot.
    fn read(&self, key: &[u8]) -> Result<Lookup, StoreError> {
        let read = self.db.begin_read().map_err(fault)?;
        let entries = read.open_table(ENTRIES).map_err(fault)?;
        let stored = entries.get(key).map_err(fault)?;
        match stored {
            None => Ok(Lookup::Absent),
            Some(stored) => classify(stored.value(), now_millis()),
        }
    }

    /// Runs `operation` in one write transaction, followed by the expiry sweep and the
    /// `max_bytes` eviction, and commits it (with fsync when `durable`) if anything
    /// changed.
    fn write<T>(
        &self,
        durable: bool,
        operation: impl FnOnce(&mut Batch<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut transaction = self.db.begin_write().map_err(fault)?;
        if !durable {
            transaction
                .set_durability(Durability::None)
                .map_err(|error| StoreError::Other(Box::new(error)))?;
        }
        let (answer, changed, removed) = {
            let mut batch = Batch::open(&transaction)?;
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
            self.count_removals(&removed);
        } else {
            transaction.abort().map_err(fault)?;
        }
        Ok(answer)
    }

    fn put(&self, key: &[u8], value: &[u8], expires_at: u64) -> Result<(), StoreError> {
        self.write(true, |batch| batch.put(key, value, expires_at))
    }

    fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.write(true, |batch| batch.delete(key))
    }

    /// Deletes entries found expired by a read, if they still are; not fsync'd, as
    /// losing this in a crash only leaves expired entries to be deleted later.
    fn purge_expired(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(false, |batch| {
            keys.iter().try_for_each(|key| batch.lookup(key).map(drop))
        })
    }
}

/// What a key holds, as far as a reader is concerned.
enum Lookup {
    Absent,
    Expired,
    Live(Vec<u8>),
}

/// Splits a stored entry into its header and value. Too short to hold a header is
/// corrupt (never written by this store).
fn split_entry(stored: &[u8]) -> Result<(u64, u64, &[u8]), StoreError> {
    if stored.len() < HEADER_LEN {
        return Err(StoreError::Corrupt(format!(
            "a disk cache entry of {} bytes is shorter than its header",
            stored.len()
        )));
    }
    let (header, value) = stored.split_at(HEADER_LEN);
    let expires_at = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let sequence = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    Ok((expires_at, sequence, value))
}

fn classify(stored: &[u8], now: u64) -> Result<Lookup, StoreError> {
    let (expires_at, _, value) = split_entry(stored)?;
    Ok(if is_expired(expires_at, now) {
        Lookup::Expired
    } else {
        Lookup::Live(value.to_vec())
    })
}

fn is_expired(expires_at: u64, now: u64) -> bool {
    expires_at != 0 && expires_at <= now
}

/// Position in `expiry_order`: entries without expiry sort after every expiring one.
fn order_key(expires_at: u64, sequence: u64) -> (u64, u64) {
    let expiry = if expires_at == 0 {
        u64::MAX
    } else {
        expires_at
    };
    (expiry, sequence)
}

fn expiry_at(now: u64, ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The tables of one write transaction, and the bookkeeping it commits with them.
struct Batch<'txn> {
    entries: Table<'txn, &'static [u8], &'static [u8]>,
    order: Table<'txn, (u64, u64), &'static [u8]>,
    meta: Table<'txn, &'static str, u64>,
    stored_bytes: u64,
    next_sequence: u64,
    now: u64,
    changed: bool,
    removed: Vec<(Vec<u8>, Removal)>,
}

impl<'txn> Batch<'txn> {
    fn open(transaction: &'txn WriteTransaction) -> Result<Batch<'txn>, StoreError> {
        let entries = transaction.open_table(ENTRIES).map_err(fault)?;
        let order = transaction.open_table(EXPIRY_ORDER).map_err(fault)?;
        let meta = transaction.open_table(META).map_err(fault)?;
        let read = |name| -> Result<u64, StoreError> {
            Ok(meta.get(name).map_err(fault)?.map_or(0, |n| n.value()))
        };
        let stored_bytes = read(META_BYTES)?;
        let next_sequence = read(META_NEXT_SEQUENCE)?;
        Ok(Batch {
            entries,
            order,
            meta,
            stored_bytes,
            next_sequence,
            now: now_millis(),
            changed: false,
            removed: Vec::new(),
        })
    }

    /// The live value under `key`; an expired entry is deleted and reported absent.
    fn lookup(&mut self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let found = match self.entries.get(key).map_err(fault)? {
            None => return Ok(None),
            Some(stored) => {
                let (expires_at, _, value) = split_entry(stored.value())?;
                (expires_at, value.to_vec())
            }
        };
        if is_expired(found.0, self.now) {
            self.delete(key)?;
            self.removed.push((key.to_vec(), Removal::Expired));
            return Ok(None);
        }
        Ok(Some(found))
    }

    fn put(&mut self, key: &[u8], value: &[u8], expires_at: u64) -> Result<(), StoreError> {
        self.delete(key)?;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let mut stored = Vec::with_capacity(HEADER_LEN + value.len());
        stored.extend_from_slice(&expires_at.to_le_bytes());
        stored.extend_from_slice(&sequence.to_le_bytes());
        stored.extend_from_slice(value);
        self.entries.insert(key, stored.as_slice()).map_err(fault)?;
        self.order
            .insert(order_key(expires_at, sequence), key)
            .map_err(fault)?;
        self.stored_bytes += (key.len() + stored.len()) as u64;
        self.changed = true;
        Ok(())
    }

    /// Deletes the entry and its place in the expiry order; returns whether there was one.
    /// A corrupt entry is deleted too (its orphaned order row is dropped when reached).
    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let header = match self.entries.remove(key).map_err(fault)? {
            None => return Ok(false),
            Some(stored) => {
                let stored = stored.value();
                self.stored_bytes = self
                    .stored_bytes
                    .saturating_sub((key.len() + stored.len()) as u64);
                split_entry(stored)
                    .ok()
                    .map(|(expires_at, sequence, _)| (expires_at, sequence))
            }
        };
        if let Some((expires_at, sequence)) = header {
            self.order
                .remove(order_key(expires_at, sequence))
                .map_err(fault)?;
        }
        self.changed = true;
        Ok(true)
    }

    /// Removes the head of the expiry order and its entry (if the entry is still the one
    /// the order row was written for); `None` when the order is empty.
    fn pop_head(&mut self, cause: Removal) -> Result<Option<()>, StoreError> {
        let ((expiry, sequence), key) = match self.order.pop_first().map_err(fault)? {
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
                    .map(|(expires_at, seq, _)| order_key(expires_at, seq))
            });
        if current == Some((expiry, sequence)) {
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

    /// Deletes at most `limit` expired entries from the head of the expiry order.
    fn sweep(&mut self, limit: usize) -> Result<(), StoreError> {
        for _ in 0..limit {
            let head = self.order.first().map_err(fault)?;
            let expired = head.is_some_and(|(position, _)| position.value().0 <= self.now);
            if !expired {
                break;
            }
            self.pop_head(Removal::Expired)?;
        }
        Ok(())
    }

    fn evict_to(&mut self, max_bytes: u64) -> Result<(), StoreError> {
        while self.stored_bytes > max_bytes {
            let expired = self
                .order
                .first()
                .map_err(fault)?
                .is_some_and(|(position, _)| position.value().0 <= self.now);
            let cause = if expired {
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

    fn save(&mut self) -> Result<(), StoreError> {
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

    /// Deletes every entry whose key starts with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
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
}

/// redb's errors as store errors: I/O is `Unavailable`, the rest `Other`.
fn fault(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(error) => StoreError::Unavailable(format!("disk cache I/O error: {error}")),
        other => StoreError::Other(Box::new(other)),
    }
}

/// Runs a blocking write off the async executor's worker threads.
///
/// Every write is an fsync'd commit, which takes milliseconds on most disks (see
/// BENCHMARKS.md, "Disk store"): long enough to stall every other task on the worker, so
/// inside a tokio runtime it goes to the blocking pool. Reads stay inline: they are served
/// from redb's page cache in microseconds, less than a trip to the blocking pool costs.
async fn off_the_executor<T: Send + 'static>(
    write: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(write)
            .await
            .map_err(|error| StoreError::Other(Box::new(error)))?,
        Err(_) => write(),
    }
}

impl<K, V, C: Codec> Store<K, V> for DiskStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = self.encode_key(key)?;
        match self.shared.read(&key)? {
            Lookup::Absent => Ok(None),
            Lookup::Expired => {
                self.shared.purge_expired(&[key])?;
                Ok(None)
            }
            Lookup::Live(bytes) => self.decode(&bytes).map(Some),
        }
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        let key = self.encode_key(&key)?;
        let value = self.encode(&value)?;
        self.shared.put(&key, &value, self.expiry(ttl))
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        self.shared.delete(&key)
    }

    /// Deletes this namespace's entries (a range scan over its key prefix) and nothing
    /// else.
    fn clear(&self) -> Result<(), StoreError> {
        let prefix = self.namespace_prefix();
        self.shared.write(true, |batch| batch.delete_prefix(prefix))
    }

    fn with_namespace(mut self, namespace: &'static str) -> Self {
        if self.keys.adopt_namespace(namespace) {
            self.removals = self.shared.counters_for(self.keys.namespace_str());
        }
        self
    }

    /// `entries` counts this namespace's entries (expired ones not yet deleted included)
    /// with a range scan; `evictions` and `expirations` count what this process removed
    /// from this namespace since it opened the store.
    fn stats(&self) -> StoreStats {
        let prefix = self.namespace_prefix();
        let count = || -> Result<u64, StoreError> {
            let read = self.shared.db.begin_read().map_err(fault)?;
            let entries = read.open_table(ENTRIES).map_err(fault)?;
            let mut count = 0;
            for entry in entries.range(prefix..).map_err(fault)? {
                if !entry.map_err(fault)?.0.value().starts_with(prefix) {
                    break;
                }
                count += 1;
            }
            Ok(count)
        };
        StoreStats::new(
            count().unwrap_or(0),
            self.removals.evictions.load(Ordering::Relaxed),
            self.removals.expirations.load(Ordering::Relaxed),
        )
    }

    fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let encoded = self
            .encode_key(&key)
            .and_then(|key| Ok((key, self.encode(&value)?)));
        let expires_at = self.expiry(ttl);
        let shared = Arc::clone(&self.shared);
        async move {
            let (key, value) = encoded?;
            off_the_executor(move || shared.put(&key, &value, expires_at)).await
        }
    }

    fn remove_async(&self, key: &K) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let key = self.encode_key(key);
        let shared = Arc::clone(&self.shared);
        async move {
            let key = key?;
            off_the_executor(move || shared.delete(&key)).await
        }
    }
}

impl<K, V, C: Codec> CacheApi<K, V> for DiskStore<C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send,
{
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let key = self.encode_key(&key)?;
        let value = self.encode(&value)?;
        let expires_at = self.expiry(ttl);
        self.shared.write(true, |batch| {
            if batch.lookup(&key)?.is_some() {
                return Ok(false);
            }
            batch.put(&key, &value, expires_at)?;
            Ok(true)
        })
    }

    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let key = self.encode_key(key)?;
        // `None` means "never expires" here, not the store's default.
        let expires_at = expiry_at(now_millis(), ttl);
        self.shared.write(true, |batch| match batch.lookup(&key)? {
            Some((_, value)) => {
                batch.put(&key, &value, expires_at)?;
                Ok(true)
            }
            None => Ok(false),
        })
    }

    /// Keeps an existing counter's expiry; a new counter gets the default TTL.
    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        self.count(key, delta, true)
            .map(|counted| counted.expect("a missing counter is created"))
    }

    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError> {
        self.count(key, delta, false)
    }

    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError> {
        let key = self.encode_key(key)?;
        match self.shared.read(&key)? {
            Lookup::Absent => Ok(None),
            Lookup::Expired => {
                self.shared.purge_expired(&[key])?;
                Ok(None)
            }
            Lookup::Live(bytes) => Ok(Some((
                self.decode(&bytes)?,
                CasToken(CasTokenRepr::Bytes(bytes)),
            ))),
        }
    }

    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let CasToken(CasTokenRepr::Bytes(expected)) = token else {
            return Err(CasToken::foreign());
        };
        let key = self.encode_key(&key)?;
        let value = self.encode(&value)?;
        let expires_at = self.expiry(ttl);
        self.shared.write(true, |batch| {
            // Stored values are never empty, so the empty token means "absent".
            let current = batch.lookup(&key)?.map(|(_, bytes)| bytes);
            let unchanged = match current {
                None => expected.is_empty(),
                Some(bytes) => bytes == *expected,
            };
            if unchanged {
                batch.put(&key, &value, expires_at)?;
            }
            Ok(unchanged)
        })
    }

    /// One read transaction for every key.
    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError> {
        let encoded = keys
            .iter()
            .map(|key| self.encode_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        let now = now_millis();
        let mut expired = Vec::new();
        let mut found = Vec::with_capacity(keys.len());
        {
            let read = self.shared.db.begin_read().map_err(fault)?;
            let entries = read.open_table(ENTRIES).map_err(fault)?;
            for key in encoded {
                let lookup = match entries.get(key.as_slice()).map_err(fault)? {
                    None => Lookup::Absent,
                    Some(stored) => classify(stored.value(), now)?,
                };
                found.push(match lookup {
                    Lookup::Absent => None,
                    Lookup::Expired => {
                        expired.push(key);
                        None
                    }
                    Lookup::Live(bytes) => Some(self.decode(&bytes)?),
                });
            }
        }
        self.shared.purge_expired(&expired)?;
        Ok(found)
    }

    /// One fsync'd transaction for every entry.
    fn set_many(&self, entries: Vec<(K, V)>, ttl: Option<Duration>) -> Result<(), StoreError> {
        let encoded = entries
            .iter()
            .map(|(key, value)| Ok((self.encode_key(key)?, self.encode(value)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let expires_at = self.expiry(ttl);
        self.shared.write(true, |batch| {
            encoded
                .iter()
                .try_for_each(|(key, value)| batch.put(key, value, expires_at))
        })
    }

    /// One fsync'd transaction for every key.
    fn delete_many(&self, keys: &[K]) -> Result<usize, StoreError> {
        let encoded = keys
            .iter()
            .map(|key| self.encode_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        self.shared.write(true, |batch| {
            let mut removed = 0;
            for key in &encoded {
                removed += usize::from(batch.delete(key)?);
            }
            Ok(removed)
        })
    }

    /// One transaction, so unlike Django's read-write-delete the move is atomic; the
    /// entry keeps its expiry.
    fn incr_version(&self, key: &K, delta: i64) -> Result<Option<u64>, StoreError> {
        let version = self.keys.shifted_version(delta)?;
        let old = self.encode_key(key)?;
        let new = self.encode_key_in(&self.keys.at_version(version), key)?;
        self.shared.write(true, |batch| {
            let Some((expires_at, value)) = batch.lookup(&old)? else {
                return Ok(None);
            };
            batch.delete(&old)?;
            batch.put(&new, &value, expires_at)?;
            Ok(Some(version))
        })
    }
}

impl<C> fmt::Debug for DiskStore<C> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DiskStore")
            .field("dir", &self.shared.dir)
            .field("keys", &self.keys.as_str())
            .field("max_bytes", &self.shared.max_bytes)
            .field("default_ttl", &self.default_ttl)
            .field("sweep_batch", &self.shared.sweep_batch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "cachemacro-disk-unit-{name}-{}-{}",
                std::process::id(),
                now_millis()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_raw(store: &DiskStore, key: &[u8], stored: &[u8]) {
        let write = store.shared.db.begin_write().unwrap();
        write
            .open_table(ENTRIES)
            .unwrap()
            .insert(key, stored)
            .unwrap();
        write.commit().unwrap();
    }

    #[test]
    fn garbage_and_truncated_entries_are_corrupt_and_get_overwritten() {
        let dir = TempDir::new("garbage");
        let store = DiskStore::builder(&dir.0)
            .namespace("garbage")
            .build()
            .unwrap();
        let short = store.encode_key(&1u32).unwrap();
        let garbage = store.encode_key(&2u32).unwrap();
        write_raw(&store, &short, b"short");
        let mut not_messagepack = vec![0; HEADER_LEN];
        not_messagepack.extend_from_slice(b"\xc1 not messagepack");
        write_raw(&store, &garbage, &not_messagepack);

        for key in [1u32, 2] {
            let found: Result<Option<String>, _> = store.get(&key);
            assert!(matches!(found, Err(StoreError::Corrupt(_))), "{found:?}");
            let many: Result<Vec<Option<String>>, _> = store.get_many(&[key]);
            assert!(matches!(many, Err(StoreError::Corrupt(_))), "{many:?}");
            store.insert(key, format!("fixed {key}"), None).unwrap();
            assert_eq!(store.get(&key).unwrap(), Some(format!("fixed {key}")));
        }
        assert!(Store::<u32, String>::remove(&store, &1).unwrap());
        assert!(Store::<u32, String>::remove(&store, &2).unwrap());
        assert_eq!(store.stored_bytes().unwrap(), 0);
    }

    #[test]
    fn stored_bytes_follow_inserts_overwrites_and_removals() {
        let dir = TempDir::new("bytes");
        let store = DiskStore::open(&dir.0).unwrap();
        store.insert(1u32, "x".repeat(100), None).unwrap();
        let one = store.stored_bytes().unwrap();
        assert!(one > 100 + HEADER_LEN as u64, "{one}");
        store.insert(1u32, "x".repeat(100), None).unwrap();
        assert_eq!(store.stored_bytes().unwrap(), one);
        store.insert(2u32, "x".repeat(100), None).unwrap();
        assert_eq!(store.stored_bytes().unwrap(), 2 * one);
        Store::<u32, String>::clear(&store).unwrap();
        assert_eq!(store.stored_bytes().unwrap(), 0);
    }

    #[test]
    fn each_write_sweeps_at_most_the_batch_of_expired_entries() {
        let dir = TempDir::new("sweep");
        let store = DiskStore::builder(&dir.0)
            .namespace("sweep")
            .sweep_batch(3)
            .build()
            .unwrap();
        let entries: Vec<(u32, u32)> = (0..10).map(|n| (n, n)).collect();
        // Long enough that none expires while `set_many` itself writes (its sweep would
        // take them), short enough to wait out.
        store
            .set_many(entries, Some(Duration::from_millis(300)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(Store::<u32, u32>::stats(&store).entries, 10);

        store.insert(100u32, 100u32, None).unwrap();
        let stats = Store::<u32, u32>::stats(&store);
        assert_eq!((stats.entries, stats.expirations), (8, 3));
        store.insert(101u32, 101u32, None).unwrap();
        assert_eq!(Store::<u32, u32>::stats(&store).expirations, 6);
        // A read that finds an expired entry deletes it, and that write sweeps a batch
        // too: 9 itself, then the 3 left at the head of the expiry order.
        assert_eq!(Store::<u32, u32>::get(&store, &9).unwrap(), None);
        let stats = Store::<u32, u32>::stats(&store);
        assert_eq!((stats.entries, stats.expirations), (2, 10));
    }

    #[test]
    fn eviction_takes_the_soonest_expiry_then_the_oldest_write() {
        let dir = TempDir::new("evict");
        let probe = DiskStore::open(&dir.0).unwrap();
        probe.insert(0u32, 0u32, None).unwrap();
        let entry = probe.stored_bytes().unwrap();
        drop(probe);
        std::fs::remove_dir_all(&dir.0).unwrap();

        let store = DiskStore::builder(&dir.0)
            .max_bytes(3 * entry)
            .build()
            .unwrap();
        store.insert(1u32, 1u32, None).unwrap();
        store.insert(2u32, 2u32, None).unwrap();
        store
            .insert(3u32, 3u32, Some(Duration::from_secs(3600)))
            .unwrap();
        store.insert(4u32, 4u32, None).unwrap();
        // 3 expires first, although written after 1 and 2.
        assert_eq!(Store::<u32, u32>::get(&store, &3).unwrap(), None);
        store.insert(5u32, 5u32, None).unwrap();
        // Then the oldest entry without expiry.
        assert_eq!(Store::<u32, u32>::get(&store, &1).unwrap(), None);
        let kept: Vec<Option<u32>> = store.get_many(&[2, 4, 5]).unwrap();
        assert_eq!(kept, vec![Some(2), Some(4), Some(5)]);
        assert_eq!(store.stored_bytes().unwrap(), 3 * entry);
        assert_eq!(Store::<u32, u32>::stats(&store).evictions, 2);
    }

    #[test]
    fn incr_version_moves_the_entry_in_one_step() {
        let dir = TempDir::new("version");
        let store = DiskStore::builder(&dir.0).namespace("v").build().unwrap();
        store
            .insert("k", "value".to_owned(), Some(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(
            CacheApi::<&str, String>::incr_version(&store, &"k", 1).unwrap(),
            Some(2)
        );
        assert_eq!(Store::<&str, String>::get(&store, &"k").unwrap(), None);
        let next = DiskStore::builder(&dir.0).namespace("v").version(2);
        drop(store);
        let next = next.build().unwrap();
        assert_eq!(next.get(&"k").unwrap(), Some("value".to_owned()));
        assert_eq!(
            CacheApi::<&str, String>::incr_version(&next, &"missing", 1).unwrap(),
            None
        );
    }
}
