//! How encoded stores turn values into bytes.
//!
//! Values go through a [`Codec`] ([`MessagePack`] unless a builder says otherwise),
//! except integers, which are always written as decimal text: that is the form Redis'
//! `INCRBY`, memcached's `incr` and the SQL stores' counters count in, so a counter
//! bumped atomically by the server reads back through the same `get` as any other
//! value, whatever the codec.
//!
//! Keys are not the codec's: see [`super::key_space`].

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
#[path = "codec_tests.rs"]
mod tests;
