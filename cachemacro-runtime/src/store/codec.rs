//! How remote stores turn keys and values into bytes.
//!
//! Values are MessagePack (compact, self-describing enough to reject bytes of another
//! type), except integers, which are written as decimal text: that is the form Redis'
//! `INCRBY` and memcached's `incr` count in, so a counter bumped atomically by the server
//! reads back through the same `get` as any other value. No MessagePack document of
//! anything but an integer is `-?[0-9]+`, so the two forms cannot be confused.
//!
//! Keys are the store's prefix followed by the MessagePack encoding of the key, which is
//! injective for values of one type: `("EC1", 15)` and `("EC11", 5)` stay apart.

// Each store uses its part; with only some of the stores' features on, the rest is unused.
#![cfg_attr(not(all(feature = "redis", feature = "memcached")), allow(dead_code))]

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

/// The bytes stored for `value`.
pub(crate) fn encode_value<V: Serialize>(value: &V) -> Result<Vec<u8>, StoreError> {
    let packed = rmp_serde::to_vec(value).map_err(|error| StoreError::Other(Box::new(error)))?;
    Ok(match packed_integer(&packed) {
        Some(Integer::Signed(n)) => n.to_string().into_bytes(),
        Some(Integer::Unsigned(n)) => n.to_string().into_bytes(),
        None => packed,
    })
}

/// The value stored as `bytes`; bytes of another type or garbage are
/// [`StoreError::Corrupt`].
pub(crate) fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, StoreError> {
    let corrupt = |error: rmp_serde::decode::Error| StoreError::Corrupt(error.to_string());
    match decimal(bytes) {
        Some(Integer::Signed(n)) => {
            rmp_serde::from_slice(&rmp_serde::to_vec(&n).expect("an i64 encodes")).map_err(corrupt)
        }
        Some(Integer::Unsigned(n)) => {
            rmp_serde::from_slice(&rmp_serde::to_vec(&n).expect("a u64 encodes")).map_err(corrupt)
        }
        None => rmp_serde::from_slice(bytes).map_err(corrupt),
    }
}

/// [`decode_value`] of a lookup that may have found nothing.
pub(crate) fn decode_found<V: DeserializeOwned>(
    bytes: Option<Vec<u8>>,
) -> Result<Option<V>, StoreError> {
    bytes.map(|bytes| decode_value(&bytes)).transpose()
}

/// `prefix` followed by the MessagePack encoding of `key`.
pub(crate) fn encode_key<K: Serialize + ?Sized>(
    prefix: &str,
    key: &K,
) -> Result<Vec<u8>, StoreError> {
    let mut encoded = prefix.as_bytes().to_vec();
    rmp_serde::encode::write(&mut encoded, key)
        .map_err(|error| StoreError::Other(Box::new(error)))?;
    Ok(encoded)
}

#[derive(Debug, PartialEq)]
enum Integer {
    Signed(i64),
    Unsigned(u64),
}

/// The integer a MessagePack document holds, if it is exactly one integer.
fn packed_integer(packed: &[u8]) -> Option<Integer> {
    let (&marker, rest) = packed.split_first()?;
    let is_integer = match marker {
        0x00..=0x7f | 0xe0..=0xff => rest.is_empty(),
        0xcc | 0xd0 => rest.len() == 1,
        0xcd | 0xd1 => rest.len() == 2,
        0xce | 0xd2 => rest.len() == 4,
        0xcf | 0xd3 => rest.len() == 8,
        _ => false,
    };
    if !is_integer {
        return None;
    }
    match rmp_serde::from_slice::<i64>(packed) {
        Ok(n) => Some(Integer::Signed(n)),
        Err(_) => rmp_serde::from_slice::<u64>(packed)
            .ok()
            .map(Integer::Unsigned),
    }
}

/// The integer written as decimal text in `bytes`, if that is what they are.
fn decimal(bytes: &[u8]) -> Option<Integer> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    match text.parse::<i64>() {
        Ok(n) => Some(Integer::Signed(n)),
        Err(_) => text.parse::<u64>().ok().map(Integer::Unsigned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_decimal_text_and_read_back() {
        assert_eq!(encode_value(&42u32).unwrap(), b"42");
        assert_eq!(encode_value(&-7i64).unwrap(), b"-7");
        assert_eq!(
            encode_value(&u64::MAX).unwrap(),
            u64::MAX.to_string().as_bytes()
        );
        assert_eq!(decode_value::<u32>(b"42").unwrap(), 42);
        assert_eq!(decode_value::<i64>(b"-7").unwrap(), -7);
        assert_eq!(
            decode_value::<u64>(u64::MAX.to_string().as_bytes()).unwrap(),
            u64::MAX
        );
        // What a server's INCR leaves behind reads back as the counter's type.
        assert_eq!(decode_value::<i64>(b"80000").unwrap(), 80_000);
    }

    #[test]
    fn other_values_round_trip_through_messagepack() {
        let value = (String::from("EC1A"), vec![1u8, 2], Some(3.5f64));
        let bytes = encode_value(&value).unwrap();
        assert!(decimal(&bytes).is_none());
        assert_eq!(
            decode_value::<(String, Vec<u8>, Option<f64>)>(&bytes).unwrap(),
            value
        );
        assert_eq!(
            decode_value::<String>(&encode_value(&"123").unwrap()).unwrap(),
            "123"
        );
    }

    #[test]
    fn bytes_of_another_type_are_corrupt_not_a_panic() {
        assert!(matches!(
            decode_value::<u32>(b"\xc1garbage"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_value::<String>(b"12"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_value::<u8>(b"300"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn keys_do_not_collide_by_concatenation() {
        let a = encode_key("p:", &("EC1", 15u32)).unwrap();
        let b = encode_key("p:", &("EC11", 5u32)).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(b"p:"));
    }
}

/// The key settings every store builder outside the process takes: prefix, namespace
/// and version. Builders hold one in a field named `keys` and get the setters from
/// [`key_setters!`].
#[derive(Debug, Clone)]
pub(crate) struct KeyOptions {
    pub(crate) prefix: String,
    pub(crate) namespace: Option<String>,
    pub(crate) version: u64,
}

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions {
            prefix: "cachemacro".to_owned(),
            namespace: None,
            version: 1,
        }
    }
}

impl KeyOptions {
    pub(crate) fn into_key_space(self) -> KeySpace {
        KeySpace::new(self.prefix, self.namespace, self.version)
    }
}

/// The `prefix`, `namespace` and `version` setters of a builder with a `keys: KeyOptions`
/// field, written once for every store.
macro_rules! key_setters {
    () => {
        /// The first part of every key (default `cachemacro`), shared by all caches of
        /// one application; two applications on one server keep apart by it.
        pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
            self.keys.prefix = prefix.into();
            self
        }

        /// The second part of every key. Defaults to the memoized function's cache name,
        /// so set it only to share entries between differently named functions (or,
        /// for a page cache, between handlers).
        pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
            self.keys.namespace = Some(namespace.into());
            self
        }

        /// The third part of every key (default 1), as Django's `VERSION`: deploying
        /// with a new version leaves the entries of the old one out of sight (they
        /// expire by themselves), and a store at version `n + 1` reads what
        /// [`incr_version`](crate::CacheApi::incr_version) moved there.
        pub fn version(mut self, version: u64) -> Self {
            self.keys.version = version;
            self
        }
    };
}
pub(crate) use key_setters;

/// `<prefix>:<namespace>:<version>:`, the start of every key of one remote store;
/// rendered once, not on every call. The version is Django's: bumping it for a key
/// ([`CacheApi::incr_version`](crate::CacheApi::incr_version)) or for a whole store
/// (the builders' `version`) moves entries out of sight without deleting anything.
#[derive(Debug)]
pub(crate) struct KeySpace {
    prefix: String,
    namespace: Option<String>,
    version: u64,
    namespace_rendered: String,
    rendered: String,
}

impl KeySpace {
    pub(crate) fn new(prefix: String, namespace: Option<String>, version: u64) -> KeySpace {
        let mut space = KeySpace {
            prefix,
            namespace,
            version,
            namespace_rendered: String::new(),
            rendered: String::new(),
        };
        space.render();
        space
    }

    /// Takes the memoized function's cache name unless the user chose a namespace.
    pub(crate) fn adopt_namespace(&mut self, namespace: &str) {
        if self.namespace.is_none() {
            self.namespace = Some(namespace.to_owned());
            self.render();
        }
    }

    /// The start of this store's keys at its version.
    pub(crate) fn as_str(&self) -> &str {
        &self.rendered
    }

    /// The start of this namespace's keys at every version: what `clear` removes.
    pub(crate) fn namespace_str(&self) -> &str {
        &self.namespace_rendered
    }

    /// The start of this namespace's keys at `version`.
    pub(crate) fn at_version(&self, version: u64) -> String {
        format!("{}{version}:", self.namespace_rendered)
    }

    /// The version `delta` away from this store's, or an error if there is none.
    pub(crate) fn shifted_version(&self, delta: i64) -> Result<u64, StoreError> {
        self.version.checked_add_signed(delta).ok_or_else(|| {
            StoreError::Other(format!("version {} {delta:+} is out of range", self.version).into())
        })
    }

    fn render(&mut self) {
        let namespace = self.namespace.as_deref().unwrap_or("default");
        self.namespace_rendered = format!("{}:{namespace}:", self.prefix);
        self.rendered = self.at_version(self.version);
    }
}

/// After a failed connect, a remote server is not tried again for a while: callers get
/// an immediate "unavailable" (and compute) instead of each waiting for a timeout.
#[derive(Debug)]
pub(crate) struct Backoff {
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
    delay: std::time::Duration,
}

impl Backoff {
    pub(crate) fn new(delay: std::time::Duration) -> Backoff {
        Backoff {
            down_until: std::sync::Mutex::new(None),
            delay,
        }
    }

    /// An error naming `server` while it is marked down.
    pub(crate) fn check(&self, server: &str) -> Result<(), StoreError> {
        match *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(until) if std::time::Instant::now() < until => Err(StoreError::Unavailable(
                format!("{server} marked down after a failed connect; retrying later"),
            )),
            _ => Ok(()),
        }
    }

    /// Marks the server down for the delay.
    pub(crate) fn trip(&self) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now() + self.delay);
    }
}
