use std::path::PathBuf;
use std::time::Duration;

use redb::ReadableDatabase;

use super::layout::{now_millis, ENTRIES, HEADER_LEN};
use super::DiskStore;
use crate::store::api::CacheApi;
use crate::store::encoded::key_space::KeySpace;
use crate::store::{Store, StoreError};

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

/// The rendered key of `key` in the default prefix and version of `namespace`.
fn rendered(namespace: &str, key: u32) -> Vec<u8> {
    KeySpace::new("cachemacro".to_owned(), Some(namespace.to_owned()), 1)
        .key(&key)
        .unwrap()
}

fn write_raw(store: &DiskStore, key: &[u8], stored: &[u8]) {
    let write = store.backend().file.database().begin_write().unwrap();
    write
        .open_table(ENTRIES)
        .unwrap()
        .insert(key, stored)
        .unwrap();
    write.commit().unwrap();
}

fn read_raw(store: &DiskStore, key: &[u8]) -> Option<Vec<u8>> {
    let read = store.backend().file.database().begin_read().unwrap();
    let entries = read.open_table(ENTRIES).unwrap();
    let stored = entries.get(key).unwrap();
    stored.map(|stored| stored.value().to_vec())
}

#[test]
fn garbage_and_truncated_entries_are_corrupt_and_get_overwritten() {
    let dir = TempDir::new("garbage");
    let store = DiskStore::builder(&dir.0)
        .namespace("garbage")
        .build()
        .unwrap();
    let short = rendered("garbage", 1);
    let garbage = rendered("garbage", 2);
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

#[test]
fn a_counter_that_is_not_decimal_text_is_corrupt_and_does_not_mark_the_file_down() {
    let dir = TempDir::new("counter-corrupt");
    let store = DiskStore::builder(&dir.0)
        .namespace("counters")
        .retry_after(Duration::from_secs(3600))
        .build()
        .unwrap();
    store.insert(1u32, "not a number".to_owned(), None).unwrap();
    let counted = CacheApi::<u32, i64>::incr(&store, &1, 1);
    assert!(
        matches!(counted, Err(StoreError::Corrupt(_))),
        "{counted:?}"
    );
    // The next call reaches the file: a corrupt value is no outage.
    assert_eq!(
        Store::<u32, String>::get(&store, &1).unwrap(),
        Some("not a number".to_owned())
    );
    assert_eq!(CacheApi::<u32, i64>::incr(&store, &2, -5).unwrap(), -5);
}

#[test]
fn an_overflowing_counter_is_overflow_and_stays_as_it_was() {
    let dir = TempDir::new("counter-overflow");
    let store = DiskStore::builder(&dir.0)
        .namespace("counters")
        .build()
        .unwrap();
    let key = rendered("counters", 1);
    assert_eq!(
        CacheApi::<u32, i64>::incr(&store, &1, i64::MAX).unwrap(),
        i64::MAX
    );
    let before = read_raw(&store, &key).unwrap();
    let counted = CacheApi::<u32, i64>::incr(&store, &1, 1);
    assert!(matches!(counted, Err(StoreError::Overflow)), "{counted:?}");
    assert_eq!(read_raw(&store, &key).unwrap(), before, "byte for byte");
    let counted = CacheApi::<u32, i64>::incr_existing(&store, &1, 1);
    assert!(matches!(counted, Err(StoreError::Overflow)), "{counted:?}");
    assert_eq!(
        CacheApi::<u32, i64>::decr(&store, &1, 1).unwrap(),
        i64::MAX - 1
    );

    // A counter stored above `i64` (a `u64` written by `insert`) can still come back
    // into range, and cannot go further out of it.
    store.insert(2u32, u64::MAX, None).unwrap();
    let counted = CacheApi::<u32, i64>::incr(&store, &2, 1);
    assert!(matches!(counted, Err(StoreError::Overflow)), "{counted:?}");
    assert_eq!(Store::<u32, u64>::get(&store, &2).unwrap(), Some(u64::MAX));
    assert_eq!(
        CacheApi::<u32, i64>::incr(&store, &2, i64::MIN).unwrap(),
        i64::MAX
    );
}

#[test]
fn a_new_counter_gets_the_default_ttl_and_an_existing_one_keeps_its_expiry() {
    let dir = TempDir::new("counter-ttl");
    let store = DiskStore::builder(&dir.0)
        .namespace("counters")
        .ttl(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(CacheApi::<u32, i64>::incr(&store, &1, 1).unwrap(), 1);
    store
        .insert(2u32, 10i64, Some(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(CacheApi::<u32, i64>::incr(&store, &2, 1).unwrap(), 11);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(Store::<u32, i64>::get(&store, &1).unwrap(), None);
    assert_eq!(Store::<u32, i64>::get(&store, &2).unwrap(), Some(11));
}

#[test]
fn a_token_of_another_kind_of_store_is_refused_without_marking_the_file_down() {
    let dir = TempDir::new("foreign-token");
    let store = DiskStore::builder(&dir.0)
        .retry_after(Duration::from_secs(3600))
        .build()
        .unwrap();
    let foreign = crate::CasToken::from_unique(7);
    let swapped = store.cas(1u32, 1u32, &foreign, None);
    assert!(matches!(swapped, Err(StoreError::Other(_))), "{swapped:?}");
    let absent = CacheApi::<u32, u32>::absent_token(&store);
    assert!(store.cas(1u32, 1u32, &absent, None).unwrap());
}

#[test]
fn removals_are_credited_to_the_namespace_of_the_removed_key() {
    let dir = TempDir::new("removals");
    let pages = DiskStore::builder(&dir.0)
        .namespace("pages")
        .sweep_batch(8)
        .build()
        .unwrap();
    let books = pages.in_namespace("books");
    pages
        .set_many(vec![(1u32, 1u32), (2, 2)], Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    // A write in another namespace sweeps them.
    books.insert(1u32, 1u32, None).unwrap();
    assert_eq!(Store::<u32, u32>::stats(&pages).expirations, 2);
    assert_eq!(Store::<u32, u32>::stats(&pages).entries, 0);
    assert_eq!(Store::<u32, u32>::stats(&books).expirations, 0);
    assert_eq!(Store::<u32, u32>::stats(&books).entries, 1);
}
