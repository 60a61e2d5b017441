//! Unit tests of the value codec and the key space.

use super::*;
use crate::store::encoded::key_space::KeySpace;

fn encode<V: Serialize>(value: &V) -> Vec<u8> {
    encode_value(&MessagePack, value).unwrap()
}

fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, StoreError> {
    decode_value(&MessagePack, bytes)
}

/// Writes JSON, which spells some non-integers as digits (`Some(7)` is `7`).
struct Json;

impl Codec for Json {
    fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|error| StoreError::Other(Box::new(error)))
    }

    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, StoreError> {
        serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Hits(u64);

#[test]
fn integers_are_decimal_text_and_read_back() {
    assert_eq!(encode(&42u32), b"42");
    assert_eq!(encode(&-7i64), b"-7");
    assert_eq!(encode(&u64::MAX), u64::MAX.to_string().as_bytes());
    assert_eq!(
        encode(&Hits(12)),
        b"12",
        "newtypes of integers are counters too"
    );
    assert_eq!(decode::<u32>(b"42").unwrap(), 42);
    assert_eq!(decode::<i64>(b"-7").unwrap(), -7);
    assert_eq!(
        decode::<u64>(u64::MAX.to_string().as_bytes()).unwrap(),
        u64::MAX
    );
    assert_eq!(decode::<Hits>(b"12").unwrap(), Hits(12));
    // What a server's INCR leaves behind reads back as the counter's type.
    assert_eq!(decode::<i64>(b"80000").unwrap(), 80_000);
}

#[test]
fn other_values_round_trip_through_the_codec() {
    let value = (String::from("EC1A"), vec![1u8, 2], Some(3.5f64));
    let bytes = encode(&value);
    assert!(decimal(&bytes).is_none());
    assert_eq!(
        decode::<(String, Vec<u8>, Option<f64>)>(&bytes).unwrap(),
        value
    );
    assert_eq!(decode::<String>(&encode(&"123")).unwrap(), "123");
}

#[test]
fn a_codec_that_writes_digits_for_other_types_still_round_trips() {
    let bytes = encode_value(&Json, &Some(7u32)).unwrap();
    assert_eq!(bytes, b"7");
    assert_eq!(
        decode_value::<_, Option<u32>>(&Json, &bytes).unwrap(),
        Some(7)
    );
    assert_eq!(decode_value::<_, u32>(&Json, b"7").unwrap(), 7);
    let pair = encode_value(&Json, &("EC1", 15)).unwrap();
    assert_eq!(
        decode_value::<_, (String, u8)>(&Json, &pair).unwrap(),
        ("EC1".to_owned(), 15)
    );
}

#[test]
fn bytes_of_another_type_are_corrupt_not_a_panic() {
    assert!(matches!(
        decode::<u32>(b"\xc1garbage"),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        decode::<String>(b"12"),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(decode::<u8>(b"300"), Err(StoreError::Corrupt(_))));
    assert!(
        matches!(decode::<u8>(b"\x05\x06"), Err(StoreError::Corrupt(_))),
        "trailing bytes"
    );
    assert!(matches!(
        decode_value::<_, u8>(&Json, b"300"),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn no_namespace_is_the_start_of_another() {
    let space = |prefix: &str, namespace: &str| {
        KeySpace::new(prefix.to_owned(), Some(namespace.to_owned()), 1)
            .namespace_str()
            .to_owned()
    };
    let x = space("app", "x");
    for other in [
        space("app", "x:y"),
        space("app:x", "y"),
        space("app", "x%3Ay"),
    ] {
        assert!(!other.starts_with(&x), "{other} starts with {x}");
    }
    assert_ne!(space("app", "x:y"), space("app", "x%3Ay"));
    assert_eq!(space("app", "books::nearby"), "app:books%3A%3Anearby:");
    assert_eq!(
        KeySpace::new("app".to_owned(), None, 7).as_str(),
        "app:default:7:"
    );
}

#[test]
fn keys_do_not_collide_by_concatenation() {
    let a = KeySpace::new("p".to_owned(), None, 1)
        .key(&("EC1", 15u32))
        .unwrap();
    let b = KeySpace::new("p".to_owned(), None, 1)
        .key(&("EC11", 5u32))
        .unwrap();
    assert_ne!(a, b);
    assert!(a.starts_with(b"p:default:1:"));
}
