//! Which embedded engine `DiskStore` is built on, chosen by measurement.
//!
//! ```text
//! cargo bench -p cachemacro-benches --features disk --bench disk -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `disk_hit/*`: one read of a warm key (1 024 keys `(String, u32)`, values
//!   `Vec<String>` of 3 short strings, MessagePack) plus its decode. `redb_get_decode`
//!   and `sqlite_get_decode` are the two engines with the same layout (key bytes ->
//!   expiry + value bytes), `disk_store_get` is `DiskStore::get` (redb, plus key encoding
//!   and the expiry check), `memoized_hit` the same through `#[memoize]`, and
//!   `cached_redb_get` the disk cache of `cached` 4.1 (also redb).
//! - `disk_miss/*`: one durable write of a new value, i.e. what a miss costs on top of
//!   the computation: a transaction that is fsync'd before the call returns. SQLite is in
//!   WAL mode with `synchronous = FULL` (fsync on every commit, the same guarantee as
//!   redb's default); `sqlite_insert_wal_normal` is its faster mode that survives a
//!   process crash but not a power loss, for reference. `cached_redb_set` is `cached`
//!   with its default `durable(true)`.
//!
//! Ratios within one run only: the machine is shared and fsync times swing.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cached::{ConcurrentCached, RedbCache};
use cachemacro_runtime::{memoize, DiskStore, Store};
use criterion::{criterion_group, criterion_main, Criterion};
use redb::{ReadableDatabase, TableDefinition};

type Key = (String, u32);
type Value = Vec<String>;

const KEYS: u32 = 1_024;
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");

fn key(n: u32) -> Key {
    (format!("EC{n}"), n % 16)
}

fn string_key(n: u32) -> String {
    let (postcode, radius) = key(n);
    format!("{postcode}:{radius}")
}

fn value(n: u32) -> Value {
    (0..3).map(|i| format!("Bookshop {i} near EC{n}")).collect()
}

/// The same bytes `DiskStore` keeps: prefix + MessagePack key; expiry + value.
fn key_bytes(n: u32) -> Vec<u8> {
    let mut bytes = b"bench:raw:1:".to_vec();
    rmp_serde::encode::write(&mut bytes, &key(n)).unwrap();
    bytes
}

fn stored_bytes(n: u32) -> Vec<u8> {
    let mut bytes = 0u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&rmp_serde::to_vec(&value(n)).unwrap());
    bytes
}

fn bench_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "cachemacro-bench-disk-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sqlite(dir: &std::path::Path, synchronous: &str) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(dir.join("cache.sqlite")).unwrap();
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, value BLOB NOT NULL)
             WITHOUT ROWID;"
        ))
        .unwrap();
    connection
}

static MEMOIZED_DIR: OnceLock<PathBuf> = OnceLock::new();

#[memoize(store = DiskStore::open(MEMOIZED_DIR.get().unwrap()).unwrap())]
fn nearby_stores(postcode: &str, radius: u32) -> Value {
    let n: u32 = postcode[2..].parse().unwrap();
    assert_eq!(radius, n % 16);
    value(n)
}

fn hits(c: &mut Criterion) {
    let mut group = c.benchmark_group("disk_hit");
    let next = AtomicU64::new(0);
    let cycle = || (next.fetch_add(1, Ordering::Relaxed) % u64::from(KEYS)) as u32;
    let keys: Vec<Key> = (0..KEYS).map(key).collect();
    let raw_keys: Vec<Vec<u8>> = (0..KEYS).map(key_bytes).collect();

    let redb_dir = bench_dir("redb-hit");
    let db = redb::Database::create(redb_dir.join("raw.redb")).unwrap();
    let write = db.begin_write().unwrap();
    {
        let mut table = write.open_table(TABLE).unwrap();
        for n in 0..KEYS {
            table
                .insert(key_bytes(n).as_slice(), stored_bytes(n).as_slice())
                .unwrap();
        }
    }
    write.commit().unwrap();
    group.bench_function("redb_get_decode", |b| {
        b.iter(|| {
            let read = db.begin_read().unwrap();
            let table = read.open_table(TABLE).unwrap();
            let stored = table
                .get(raw_keys[cycle() as usize].as_slice())
                .unwrap()
                .unwrap();
            let value: Value = rmp_serde::from_slice(&stored.value()[8..]).unwrap();
            black_box(value)
        })
    });

    let sqlite_dir = bench_dir("sqlite-hit");
    let connection = sqlite(&sqlite_dir, "FULL");
    {
        let mut insert = connection
            .prepare("INSERT OR REPLACE INTO entries (key, value) VALUES (?1, ?2)")
            .unwrap();
        for n in 0..KEYS {
            insert.execute((key_bytes(n), stored_bytes(n))).unwrap();
        }
    }
    group.bench_function("sqlite_get_decode", |b| {
        let mut select = connection
            .prepare_cached("SELECT value FROM entries WHERE key = ?1")
            .unwrap();
        b.iter(|| {
            let stored: Vec<u8> = select
                .query_row([raw_keys[cycle() as usize].as_slice()], |row| row.get(0))
                .unwrap();
            let value: Value = rmp_serde::from_slice(&stored[8..]).unwrap();
            black_box(value)
        })
    });

    let store_dir = bench_dir("store-hit");
    let store = DiskStore::builder(&store_dir)
        .prefix("bench")
        .namespace("store")
        .build()
        .unwrap();
    for n in 0..KEYS {
        store.insert(key(n), value(n), None).unwrap();
    }
    group.bench_function("disk_store_get", |b| {
        b.iter(|| {
            let found: Option<Value> = store.get(&keys[cycle() as usize]).unwrap();
            black_box(found.unwrap())
        })
    });

    let memoized_dir = bench_dir("memoized-hit");
    MEMOIZED_DIR.set(memoized_dir.clone()).unwrap();
    for (postcode, radius) in &keys {
        nearby_stores(postcode, *radius);
    }
    group.bench_function("memoized_hit", |b| {
        b.iter(|| {
            let (postcode, radius) = &keys[cycle() as usize];
            black_box(nearby_stores(postcode, *radius))
        })
    });
    let stats = nearby_stores::stats();
    assert_eq!(
        (stats.misses, stats.errors),
        (u64::from(KEYS), 0),
        "{stats:?}"
    );

    let cached_dir = bench_dir("cached-hit");
    // `cached`'s disk cache takes keys that are `ToString` (the key of its table).
    let cached: RedbCache<String, Value> = RedbCache::builder("bench_hit")
        .disk_dir(&cached_dir)
        .build()
        .unwrap();
    let string_keys: Vec<String> = (0..KEYS).map(string_key).collect();
    for n in 0..KEYS {
        cached.cache_set(string_key(n), value(n)).unwrap();
    }
    group.bench_function("cached_redb_get", |b| {
        b.iter(|| {
            let found = cached.cache_get(&string_keys[cycle() as usize]).unwrap();
            black_box(found.unwrap())
        })
    });
    group.finish();

    drop((db, connection, store, cached));
    // The memoized function's store stays open in its static; Linux lets the file go.
    for dir in [redb_dir, sqlite_dir, store_dir, memoized_dir, cached_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn misses(c: &mut Criterion) {
    let mut group = c.benchmark_group("disk_miss");
    // Every iteration is an fsync: few samples, or a run takes many minutes.
    group.sample_size(20);
    let next = AtomicU64::new(0);
    let fresh = || next.fetch_add(1, Ordering::Relaxed) as u32;

    let redb_dir = bench_dir("redb-miss");
    let db = redb::Database::create(redb_dir.join("raw.redb")).unwrap();
    group.bench_function("redb_insert", |b| {
        b.iter(|| {
            let n = fresh();
            let write = db.begin_write().unwrap();
            write
                .open_table(TABLE)
                .unwrap()
                .insert(key_bytes(n).as_slice(), stored_bytes(n).as_slice())
                .unwrap();
            write.commit().unwrap();
        })
    });

    let sqlite_dir = bench_dir("sqlite-miss");
    for synchronous in ["FULL", "NORMAL"] {
        let connection = sqlite(&sqlite_dir, synchronous);
        let name = format!("sqlite_insert_wal_{}", synchronous.to_lowercase());
        group.bench_function(name, |b| {
            let mut insert = connection
                .prepare_cached("INSERT OR REPLACE INTO entries (key, value) VALUES (?1, ?2)")
                .unwrap();
            b.iter(|| {
                let n = fresh();
                insert.execute((key_bytes(n), stored_bytes(n))).unwrap();
            })
        });
    }

    let store_dir = bench_dir("store-miss");
    let store = DiskStore::builder(&store_dir)
        .prefix("bench")
        .namespace("store")
        .build()
        .unwrap();
    group.bench_function("disk_store_insert", |b| {
        b.iter(|| {
            let n = fresh();
            store.insert(key(n), value(n), None).unwrap();
        })
    });
    group.bench_function("disk_store_insert_ttl", |b| {
        b.iter(|| {
            let n = fresh();
            store
                .insert(key(n), value(n), Some(Duration::from_secs(3600)))
                .unwrap();
        })
    });

    let cached_dir = bench_dir("cached-miss");
    let cached: RedbCache<String, Value> = RedbCache::builder("bench_miss")
        .disk_dir(&cached_dir)
        .build()
        .unwrap();
    group.bench_function("cached_redb_set", |b| {
        b.iter(|| {
            let n = fresh();
            cached.cache_set(string_key(n), value(n)).unwrap();
        })
    });
    group.finish();

    drop((db, store, cached));
    for dir in [redb_dir, sqlite_dir, store_dir, cached_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

criterion_group!(benches, hits, misses);
criterion_main!(benches);
