//! How stores outside the process turn keys and values into bytes.
//!
//! Values go through a [`Codec`] ([`MessagePack`] unless a builder says otherwise),
//! except integers, which are always written as decimal text: that is the form Redis'
//! `INCRBY`, memcached's `incr` and the SQL stores' counters count in, so a counter
//! bumped atomically by the server reads back through the same `get` as any other
//! value, whatever the codec.
//!
//! Keys are the store's prefix followed by the MessagePack encoding of the key, whatever
//! the value codec: injective for values of one type (`("EC1", 15)` and `("EC11", 5)`
//! stay apart) and stable, so changing the codec never changes where an entry lives.

// Each store uses its part; with only some of the stores' features on, the rest is unused.
#![cfg_attr(not(all(feature = "redis", feature = "memcached")), allow(dead_code))]

use serde::de::DeserializeOwned;
use serde::ser::{Impossible, Serialize, Serializer};

use crate::StoreError;

/// How a store outside the process writes values as bytes and reads them back.
///
/// Stores take one on their builder (`.codec(..)`); [`MessagePack`] is the default.
/// Integers never reach the codec: they are stored as decimal text so the server's
/// atomic counters work on them. A value whose bytes do not decode (written by an older
/// version of the type, or by hand) must be an error, never a panic: the memoization
/// layer treats it as a miss and overwrites it.
///
/// ```
/// use cachemacro_runtime::{Codec, StoreError};
/// use serde::{de::DeserializeOwned, Serialize};
///
/// /// Human-readable values, for a cache that people inspect with `redis-cli`.
/// #[derive(Debug, Clone, Copy, Default)]
/// struct Json;
///
/// impl Codec for Json {
///     fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, StoreError> {
///         serde_json::to_vec(value).map_err(|error| StoreError::Other(Box::new(error)))
///     }
///
///     fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, StoreError> {
///         serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
///     }
/// }
///
/// let bytes = Json.encode(&("EC1A 1BB", vec!["Highbury"]))?;
/// assert_eq!(bytes, br#"["EC1A 1BB",["Highbury"]]"#);
/// assert!(Json.decode::<u32>(b"\"text\"").is_err());
/// # Ok::<(), StoreError>(())
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The bytes stored for `value`.
    fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, StoreError>;

    /// The value stored as `bytes`; [`StoreError::Corrupt`] when they do not decode.
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, StoreError>;
}

/// The default [`Codec`]: MessagePack through `rmp-serde`. Compact, and typed enough to
/// reject most bytes of another type instead of misreading them.
///
/// ```
/// use cachemacro_runtime::{Codec, MessagePack};
///
/// let bytes = MessagePack.encode(&("EC1A 1BB", 5u8))?;
/// assert_eq!(MessagePack.decode::<(String, u8)>(&bytes)?, ("EC1A 1BB".to_owned(), 5));
/// assert!(MessagePack.decode::<String>(&bytes).is_err());
/// # Ok::<(), cachemacro_runtime::StoreError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagePack;

impl Codec for MessagePack {
    fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, StoreError> {
        rmp_serde::to_vec(value).map_err(|error| StoreError::Other(Box::new(error)))
    }

    /// Bytes left over after the value are corrupt too: `from_slice` alone would read
    /// `b"12"` as the fixint 0x31 and ignore the rest.
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, StoreError> {
        let mut cursor = std::io::Cursor::new(bytes);
        let value = rmp_serde::decode::from_read(&mut cursor)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if cursor.position() != bytes.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "{} bytes after the value",
                bytes.len() as u64 - cursor.position()
            )));
        }
        Ok(value)
    }
}

/// The bytes stored for `value`: decimal text for an integer, the codec's bytes for
/// anything else.
pub(crate) fn encode_value<C: Codec, V: Serialize + ?Sized>(
    codec: &C,
    value: &V,
) -> Result<Vec<u8>, StoreError> {
    match value.serialize(IntegerProbe) {
        Ok(Integer::Signed(n)) => Ok(n.to_string().into_bytes()),
        Ok(Integer::Unsigned(n)) => Ok(n.to_string().into_bytes()),
        Err(NotAnInteger) => codec.encode(value),
    }
}

/// The value stored as `bytes`; bytes of another type or garbage are
/// [`StoreError::Corrupt`].
///
/// Decimal text is read as an integer first. A codec other than MessagePack may write
/// digits for something else (postcard writes the char `'7'` as the byte `7`); such
/// bytes do not deserialize as that type from an integer, and go to the codec instead.
pub(crate) fn decode_value<C: Codec, V: DeserializeOwned>(
    codec: &C,
    bytes: &[u8],
) -> Result<V, StoreError> {
    let Some(integer) = decimal(bytes) else {
        return codec.decode(bytes);
    };
    match V::deserialize(IntegerText(integer)) {
        Ok(value) => Ok(value),
        Err(_) if is_integer_type::<V>() => Err(StoreError::Corrupt(format!(
            "the counter {} does not fit the value type",
            String::from_utf8_lossy(bytes)
        ))),
        Err(_) => codec.decode(bytes),
    }
}

/// [`decode_value`] of a lookup that may have found nothing.
pub(crate) fn decode_found<C: Codec, V: DeserializeOwned>(
    codec: &C,
    bytes: Option<Vec<u8>>,
) -> Result<Option<V>, StoreError> {
    bytes.map(|bytes| decode_value(codec, &bytes)).transpose()
}

/// Whether `V` is read from an integer (so digits that do not fit it are corrupt rather
/// than something for the codec to try).
fn is_integer_type<V: DeserializeOwned>() -> bool {
    V::deserialize(IntegerText(Integer::Unsigned(0))).is_ok()
}

/// An integer read from decimal text, as a deserializer: like serde's own integer
/// deserializers, but it also fills newtype structs (`struct Hits(u64)`), which
/// [`IntegerProbe`] writes as their integer.
struct IntegerText(Integer);

impl<'de> serde::Deserializer<'de> for IntegerText {
    type Error = serde::de::value::Error;

    fn deserialize_any<W: serde::de::Visitor<'de>>(
        self,
        visitor: W,
    ) -> Result<W::Value, Self::Error> {
        match self.0 {
            Integer::Signed(n) => visitor.visit_i64(n),
            Integer::Unsigned(n) => visitor.visit_u64(n),
        }
    }

    fn deserialize_newtype_struct<W: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        visitor: W,
    ) -> Result<W::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
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

/// A serializer that only accepts one integer (possibly inside newtype structs): how
/// [`encode_value`] tells counters from other values without encoding them twice.
struct IntegerProbe;

#[derive(Debug)]
struct NotAnInteger;

impl std::fmt::Display for NotAnInteger {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("not an integer")
    }
}

impl std::error::Error for NotAnInteger {}

impl serde::ser::Error for NotAnInteger {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAnInteger
    }
}

macro_rules! integers {
    ($($method:ident($type:ty) => $variant:ident as $wide:ty,)*) => {
        $(fn $method(self, n: $type) -> Result<Integer, NotAnInteger> {
            Ok(Integer::$variant(<$wide>::from(n)))
        })*
    };
}

macro_rules! not_integers {
    ($($method:ident($($arg:ty),*) -> $out:ty,)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$out, NotAnInteger> {
            Err(NotAnInteger)
        })*
    };
}

impl Serializer for IntegerProbe {
    type Ok = Integer;
    type Error = NotAnInteger;
    type SerializeSeq = Impossible<Integer, NotAnInteger>;
    type SerializeTuple = Impossible<Integer, NotAnInteger>;
    type SerializeTupleStruct = Impossible<Integer, NotAnInteger>;
    type SerializeTupleVariant = Impossible<Integer, NotAnInteger>;
    type SerializeMap = Impossible<Integer, NotAnInteger>;
    type SerializeStruct = Impossible<Integer, NotAnInteger>;
    type SerializeStructVariant = Impossible<Integer, NotAnInteger>;

    integers! {
        serialize_i8(i8) => Signed as i64,
        serialize_i16(i16) => Signed as i64,
        serialize_i32(i32) => Signed as i64,
        serialize_i64(i64) => Signed as i64,
        serialize_u8(u8) => Unsigned as u64,
        serialize_u16(u16) => Unsigned as u64,
        serialize_u32(u32) => Unsigned as u64,
        serialize_u64(u64) => Unsigned as u64,
    }

    not_integers! {
        serialize_bool(bool) -> Integer,
        serialize_f32(f32) -> Integer,
        serialize_f64(f64) -> Integer,
        serialize_char(char) -> Integer,
        serialize_str(&str) -> Integer,
        serialize_bytes(&[u8]) -> Integer,
        serialize_none() -> Integer,
        serialize_unit() -> Integer,
        serialize_unit_struct(&'static str) -> Integer,
        serialize_unit_variant(&'static str, u32, &'static str) -> Integer,
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant,
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Integer, NotAnInteger> {
        Err(NotAnInteger)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Integer, NotAnInteger> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Integer, NotAnInteger> {
        Err(NotAnInteger)
    }
}

#[derive(Debug, PartialEq)]
enum Integer {
    Signed(i64),
    Unsigned(u64),
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

/// The `connect_timeout`, `operation_timeout` and `retry_after` setters of a server
/// store's builder, written once; the argument is the path from the builder to the
/// fields (`settings`), empty when they are the builder's own.
macro_rules! timeout_setters {
    ($($field:ident).*) => {
        /// How long to wait for a connection: a new one to the server, or a free one
        /// from the store's pool.
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self$(.$field)*.connect_timeout = timeout;
            self
        }

        /// How long to wait for one command's answer once connected.
        pub fn operation_timeout(mut self, timeout: std::time::Duration) -> Self {
            self$(.$field)*.operation_timeout = timeout;
            self
        }

        /// After a failed connect, how long to answer "unavailable" at once (and let
        /// callers compute) before trying the server again.
        pub fn retry_after(mut self, delay: std::time::Duration) -> Self {
            self$(.$field)*.retry_after = delay;
            self
        }
    };
}
pub(crate) use timeout_setters;

/// `<prefix>:<namespace>:<version>:`, the start of every key of one remote store;
/// rendered once, not on every call. The version is Django's: bumping it for a key
/// ([`CacheApi::incr_version`](crate::CacheApi::incr_version)) or for a whole store
/// (the builders' `version`) moves entries out of sight without deleting anything.
#[derive(Debug, Clone)]
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

    /// Takes the memoized function's cache name unless the user chose a namespace;
    /// returns whether it did.
    pub(crate) fn adopt_namespace(&mut self, namespace: &str) -> bool {
        if self.namespace.is_some() {
            return false;
        }
        self.namespace = Some(namespace.to_owned());
        self.render();
        true
    }

    /// The same prefix and version in `namespace`.
    pub(crate) fn in_namespace(&self, namespace: String) -> KeySpace {
        KeySpace::new(self.prefix.clone(), Some(namespace), self.version)
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

    /// `:` and `%` in the prefix and the namespace are percent-escaped, so that one
    /// namespace's keys never start with another's (`app:x:` would otherwise be the
    /// start of namespace `x:y` too, and `clear` of `x` would take `x:y` with it).
    fn render(&mut self) {
        let namespace = self.namespace.as_deref().unwrap_or("default");
        self.namespace_rendered = format!("{}:{}:", escape(&self.prefix), escape(namespace));
        self.rendered = self.at_version(self.version);
    }
}

/// `part` with `%` and `:` percent-escaped (module paths' `::` become `%3A%3A`).
fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if !part.contains([':', '%']) {
        return std::borrow::Cow::Borrowed(part);
    }
    std::borrow::Cow::Owned(part.replace('%', "%25").replace(':', "%3A"))
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
