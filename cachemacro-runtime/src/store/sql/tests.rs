use std::time::Duration;

use super::engine::{last_value_per_key, successor};
use super::schema::TableName;
use super::*;
use crate::Store;

#[test]
fn the_default_script_is_the_published_constant() {
    assert_eq!(create_table_sql(DEFAULT_TABLE).unwrap(), CREATE_TABLE_SQL);
}

#[test]
fn table_names_are_identifiers_or_refused() {
    let table = TableName::parse("cache.Pages_2").unwrap();
    assert_eq!(table.quoted, "\"cache\".\"Pages_2\"");
    assert_eq!(table.index, "\"Pages_2_expires_at\"");
    for bad in [
        "",
        "1pages",
        "pages\"",
        "a.b.c",
        "pages; DROP TABLE users",
        "naïve",
        &"x".repeat(64),
    ] {
        assert!(TableName::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn a_namespace_range_ends_just_past_its_prefix() {
    assert_eq!(successor(b"app:ns:").unwrap(), b"app:ns;");
    assert_eq!(successor(b"a\xff\xff").unwrap(), b"b");
    assert_eq!(successor(b"\xff"), None);
}

#[test]
fn a_batch_writes_the_last_value_given_for_a_key_at_its_first_place() {
    let entry = |key: &str, value: &str| (key.as_bytes().to_vec(), value.as_bytes().to_vec());
    let (keys, values) =
        last_value_per_key(vec![entry("a", "1"), entry("b", "2"), entry("a", "3")]);
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(values, vec![b"3".to_vec(), b"2".to_vec()]);
}

#[test]
fn invalid_settings_fail_at_build_not_at_first_use() {
    assert!(SqlStore::new("postgres://127.0.0.1/db").is_ok());
    assert!(SqlStore::new("not a url").is_err());
    assert!(SqlStore::builder("postgres://127.0.0.1/db")
        .table("x y")
        .build()
        .is_err());
}

#[test]
fn a_store_dropped_inside_a_runtime_does_not_panic() {
    let store = SqlStore::builder(format!("postgres://127.0.0.1:{}/db", 1))
        .connect_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(Store::<u32, u32>::get(&store, &1).is_err());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        assert!(Store::<u32, u32>::get_async(&store, &1).await.is_err());
        drop(store);
    });
}
