//! Where an encoded store's keys live: `<prefix>:<namespace>:<version>:<key>`.
//!
//! The prefix keeps applications apart on one server, the namespace keeps the caches of
//! one application apart (a memoized function's name by default), and the version is
//! Django's: bumping it for a key ([`CacheApi::incr_version`](crate::CacheApi::incr_version))
//! or for a whole store (the builders' `version`) moves entries out of sight without
//! deleting anything. The key itself is MessagePack whatever the value codec: injective for
//! values of one type (`("EC1", 15)` and `("EC11", 5)` stay apart) and stable, so changing
//! the codec never changes where an entry lives.

use serde::Serialize;

use crate::StoreError;

/// The key settings a builder collects: prefix, namespace and version.
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

    /// The rendered key of `key` in this key space.
    pub(crate) fn key<K: Serialize + ?Sized>(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        encode_key(&self.rendered, key)
    }

    /// The rendered key of `key` at another version of this namespace.
    pub(crate) fn key_at_version<K: Serialize + ?Sized>(
        &self,
        version: u64,
        key: &K,
    ) -> Result<Vec<u8>, StoreError> {
        encode_key(&self.at_version(version), key)
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

/// `prefix` followed by the MessagePack encoding of `key`.
fn encode_key<K: Serialize + ?Sized>(prefix: &str, key: &K) -> Result<Vec<u8>, StoreError> {
    let mut encoded = prefix.as_bytes().to_vec();
    rmp_serde::encode::write(&mut encoded, key)
        .map_err(|error| StoreError::Other(Box::new(error)))?;
    Ok(encoded)
}
