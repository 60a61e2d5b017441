//! The disk backend: a cache in a directory on the local disk that survives restarts.
//!
//! The engine is [redb](https://www.redb.org): pure Rust, ACID, a copy-on-write B-tree
//! whose commits are fsync'd, and an exclusive lock on the file. It was chosen over SQLite
//! (through `rusqlite`) by measurement, in `benches/disk.rs` and BENCHMARKS.md.
//!
//! # Layout
//!
//! One file, `<dir>/cache.redb`, with three tables ([`layout`]):
//!
//! * `entries`: the rendered key (`<prefix>:<namespace>:<version>:<key as MessagePack>`),
//!   value a 16-byte header — expiry in wall-clock milliseconds since the Unix epoch
//!   (`0`: never) and the entry's write sequence number, both little-endian — followed by
//!   the encoded value (integers as decimal text, which `incr` counts in). Keys of one
//!   namespace are adjacent, so `clear` removes them with a range scan and touches nothing
//!   else.
//! * `expiry_order`: `(expiry or u64::MAX, sequence) -> key`, every entry once. Its head
//!   is the next entry to expire, which makes the expiry sweep a few B-tree pops, and it
//!   is also the eviction order: past `max_bytes`, the entry that expires soonest goes
//!   first, and entries without expiry go last, oldest written first.
//! * `meta`: the file format, the next sequence number and the running total of stored
//!   bytes, updated in the same transaction as the entries they describe
//!   ([`transaction`]), so a crash can never leave them out of step.
//!
//! # Expiry
//!
//! Expiry is stored with the value, so a TTL keeps running while no process has the store
//! open. An expired entry is a miss; the read that finds it also deletes it (in a commit
//! without fsync: losing that delete in a crash only leaves an expired entry behind), and
//! every write deletes at most `sweep_batch` expired entries from the head of the expiry
//! order. No background thread.
//!
//! # Calls and faults
//!
//! The backend is blocking: async callers get every operation, reads included, on tokio's
//! blocking pool (the adapter's default `execute_async`), so an fsync'd commit never
//! stalls an executor thread. Bytes of an entry too short for its header are
//! [`StoreError::Corrupt`], and so is a counter that is not decimal text; I/O errors are
//! [`StoreError::Unavailable`] (after which the adapter skips the file for
//! `retry_after`); a directory another process has open is [`StoreError::Unavailable`]
//! naming the directory, from `build`.

mod counters;
mod error;
mod file;
mod layout;
mod operations;
mod transaction;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use self::file::OpenFile;
use crate::store::encoded::backend::{Backend, Op, Reply};
use crate::store::encoded::builder::{NetworkSettings, StoreBuilder};
use crate::store::encoded::codec::{Codec, MessagePack};
use crate::store::encoded::EncodedStore;
use crate::store::{StoreError, StoreStats};

/// A [`Store`](crate::Store) and [`CacheApi`](crate::CacheApi) in a directory on the
/// local disk: memoized results survive restarts.
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
/// redb's page cache once warm. Async calls run on tokio's blocking pool.
pub type DiskStore<C = MessagePack> = EncodedStore<Disk, C>;

/// Settings of a [`DiskStore`]; from [`DiskStore::builder`]. Besides the settings of
/// every store, it takes [`max_bytes`](DiskStoreBuilder::max_bytes) and
/// [`sweep_batch`](DiskStoreBuilder::sweep_batch).
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
///     .ttl(Duration::from_secs(24 * 60 * 60))
///     .sweep_batch(64)
///     .build()?;
/// assert_eq!(store.dir(), dir.as_path());
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
pub type DiskStoreBuilder<C = MessagePack> = StoreBuilder<DiskOptions, C>;

/// What only a [`DiskStore`] is configured with: its directory, the bound on its bytes
/// and the size of the expiry sweep. Built by [`DiskStore::builder`].
///
/// ```
/// use cachemacro_runtime::backend::DiskOptions;
/// use cachemacro_runtime::{DiskStore, StoreBuilder};
///
/// let builder: StoreBuilder<DiskOptions> =
///     DiskStore::builder("/var/cache/bookshop").max_bytes(1 << 30);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct DiskOptions {
    dir: PathBuf,
    max_bytes: Option<u64>,
    sweep_batch: usize,
}

/// The disk [`Backend`] of [`DiskStore`]: one open redb file. Clones share it.
///
/// ```
/// use cachemacro_runtime::backend::Disk;
/// use cachemacro_runtime::DiskStore;
/// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-backend-{}", std::process::id()));
///
/// let store = DiskStore::open(&dir)?;
/// let disk: &Disk = store.backend();
/// assert!(format!("{disk:?}").contains("sweep_batch: 32"));
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Disk {
    file: Arc<OpenFile>,
    /// How long a counter created by `incr` lives: the store's default TTL, as for any
    /// entry written without one.
    counter_ttl: Option<Duration>,
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

    /// Settings for the store in `dir`; see [`DiskStoreBuilder`]. Nothing is opened
    /// until [`build`](DiskStoreBuilder::build).
    ///
    /// ```
    /// # #[cfg(feature = "disk")] {
    /// use cachemacro_runtime::DiskStore;
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-builder-{}", std::process::id()));
    ///
    /// let store = DiskStore::builder(&dir).namespace("pages").build()?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> DiskStoreBuilder {
        StoreBuilder::with_options(
            DiskOptions {
                dir: dir.as_ref().to_path_buf(),
                max_bytes: None,
                sweep_batch: 32,
            },
            NetworkSettings::default(),
        )
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
        self.backend().file.dir()
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
        self.backend().file.stored_bytes()
    }
}

impl<C: Codec> DiskStoreBuilder<C> {
    /// Bound on the bytes of all entries in the file (keys, values and a 16-byte header
    /// each). A write that goes past it evicts entries in expiry order — soonest expiry
    /// first, then entries without expiry, oldest written first — until the total fits,
    /// in the same transaction. Default: no bound.
    ///
    /// ```
    /// # #[cfg(feature = "disk")] {
    /// use cachemacro_runtime::DiskStore;
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-max-bytes-{}", std::process::id()));
    ///
    /// let store = DiskStore::builder(&dir).max_bytes(64 << 20).build()?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.options.max_bytes = Some(bytes);
        self
    }

    /// At most this many expired entries are deleted by each write, which keeps every
    /// write's cost bounded however many entries expired while the store was closed.
    /// Default 32; `0` leaves expired entries to be deleted when read.
    ///
    /// ```
    /// # #[cfg(feature = "disk")] {
    /// use cachemacro_runtime::DiskStore;
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-sweep-{}", std::process::id()));
    ///
    /// let store = DiskStore::builder(&dir).sweep_batch(128).build()?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn sweep_batch(mut self, entries: usize) -> Self {
        self.options.sweep_batch = entries;
        self
    }

    /// Creates the directory if needed and opens (or creates) the store's file in it.
    /// Fails with [`StoreError::Unavailable`] if the directory cannot be created, or
    /// another process (or another `DiskStore` of this one) has it open. A store left
    /// behind by a crashed process is repaired by this call.
    ///
    /// ```
    /// # #[cfg(feature = "disk")] {
    /// use cachemacro_runtime::DiskStore;
    /// # let dir = std::env::temp_dir().join(format!("cachemacro-doc-build-{}", std::process::id()));
    ///
    /// let store = DiskStore::builder(&dir).build()?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// # Ok::<(), cachemacro_runtime::StoreError>(())
    /// ```
    pub fn build(self) -> Result<DiskStore<C>, StoreError> {
        let DiskOptions {
            dir,
            max_bytes,
            sweep_batch,
        } = self.options.clone();
        let disk = Disk {
            file: Arc::new(OpenFile::open(dir, max_bytes, sweep_batch)?),
            counter_ttl: self.ttl,
        };
        Ok(self.finish(disk))
    }
}

impl Backend for Disk {
    fn describe(&self, _: usize) -> String {
        format!("the disk cache in {}", self.file.dir().display())
    }

    fn execute(&self, op: Op) -> Result<Reply, StoreError> {
        operations::perform(&self.file, self.counter_ttl, op)
    }

    /// `entries` counts the namespace's entries (expired ones not yet deleted included)
    /// with a range scan; `evictions` and `expirations` count what this process removed
    /// from the namespace since it opened the store.
    fn stats(&self, namespace: &[u8]) -> StoreStats {
        let removals = self.file.removals(namespace);
        StoreStats::new(
            self.file.count_entries(namespace).unwrap_or(0),
            removals.evictions,
            removals.expirations,
        )
    }
}

impl fmt::Debug for Disk {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Disk")
            .field("dir", &self.file.dir())
            .field("max_bytes", &self.file.max_bytes())
            .field("sweep_batch", &self.file.sweep_batch())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
