//! Key and value encoding for the stores that are not yet backends of
//! [`EncodedStore`](super::encoded::EncodedStore).

// Features whose stores are all ported use none of it.
#![allow(dead_code, unused_imports, unused_macros)]

use serde::Serialize;

pub(crate) use super::encoded::codec::{
    decode_found, decode_value, encode_value, Codec, MessagePack,
};
use crate::StoreError;

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
