//! memcached's own keys, and the namespace versions in them.
//!
//! Memcached cannot list keys, and `flush_all` would wipe other applications' entries
//! too, so a namespace is cleared by bumping a version counter that every one of its keys
//! contains: the old entries are never read again and age out with their ttl. A key is
//! `<key space>v<namespace version>:` and the hex of the MessagePack key; memcached
//! accepts at most 250 printable bytes, so a longer key (or one with a space in its
//! prefix or namespace) becomes a fixed-length MD5 of it.
//!
//! The ring routes a key without its namespace version, so that a `clear` never moves
//! keys between servers, and the adapter can tell which server a call goes to without
//! reading the version.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use crate::store::encoded::backend::split_key;

/// Memcached refuses longer keys.
const MAX_KEY_LEN: usize = 250;

/// The memcached key of a rendered key (`<prefix>:<namespace>:<version>:<MessagePack>`)
/// when its namespace is at `namespace_version`.
pub(super) fn native_key(rendered: &[u8], namespace_version: u64) -> String {
    let (space, key) = split_key(rendered);
    let mut text = String::from_utf8_lossy(space).into_owned();
    let _ = write!(text, "v{namespace_version}:");
    push_hex(&mut text, key);
    within_limits(text)
}

/// What the ring hashes for a rendered key: its memcached key without the namespace
/// version.
pub(super) fn route_key(rendered: &[u8]) -> String {
    let (space, key) = split_key(rendered);
    let mut text = String::from_utf8_lossy(space).into_owned();
    push_hex(&mut text, key);
    within_limits(text)
}

/// Where the version counter of `namespace` (`<prefix>:<namespace>:`) lives.
pub(super) fn version_key(namespace: &[u8]) -> String {
    within_limits(format!("{}version", String::from_utf8_lossy(namespace)))
}

fn push_hex(text: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
}

/// `text`, or its MD5 when memcached would refuse it as a key.
fn within_limits(text: String) -> String {
    if text.len() <= MAX_KEY_LEN && text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return text;
    }
    let mut hashed = String::from("cachemacro:md5:");
    push_hex(&mut hashed, &Md5::digest(text.as_bytes()));
    hashed
}

/// The namespaces' versions as last read from their servers, shared by every clone of a
/// backend. A version is re-read at most once per `refresh`, by one caller: the others
/// go on with the version known meanwhile rather than wait for the read.
#[derive(Debug)]
pub(super) struct NamespaceVersions {
    known: Mutex<HashMap<Vec<u8>, KnownVersion>>,
    refresh: Duration,
}

#[derive(Debug, Clone, Copy)]
struct KnownVersion {
    version: u64,
    read_at: Instant,
    refreshing: bool,
}

impl NamespaceVersions {
    pub(super) fn new(refresh: Duration) -> NamespaceVersions {
        NamespaceVersions {
            known: Mutex::new(HashMap::new()),
            refresh,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, KnownVersion>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The version of `namespace`, from `read` when the known one is older than
    /// `refresh`. A failed read leaves the version known before (0 if none), and is not
    /// retried before `refresh` has passed again: an unreachable version server costs
    /// one caller per `refresh` a failed read, not every call.
    pub(super) fn current<E>(
        &self,
        namespace: &[u8],
        read: impl FnOnce() -> Result<u64, E>,
    ) -> u64 {
        let known_before = {
            let mut known = self.lock();
            match known.get_mut(namespace) {
                Some(known) if known.refreshing || known.read_at.elapsed() < self.refresh => {
                    return known.version
                }
                Some(known) => {
                    known.refreshing = true;
                    Some(known.version)
                }
                None => None,
            }
        };
        let started = Instant::now();
        let read = read();
        let mut known = self.lock();
        if let Some(newer) = known.get(namespace) {
            // A `clear` (or another first read) settled the version while this one ran.
            if !newer.refreshing && newer.read_at >= started {
                return newer.version;
            }
        }
        let version = read.ok().or(known_before).unwrap_or(0);
        known.insert(
            namespace.to_vec(),
            KnownVersion {
                version,
                read_at: Instant::now(),
                refreshing: false,
            },
        );
        version
    }

    /// Records the version a `clear` just moved `namespace` to.
    pub(super) fn bumped(&self, namespace: &[u8], version: u64) {
        self.lock().insert(
            namespace.to_vec(),
            KnownVersion {
                version,
                read_at: Instant::now(),
                refreshing: false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn keys_keep_todays_layout_and_route_without_the_namespace_version() {
        let rendered = b"tests:books:1:\x91\x07";
        assert_eq!(native_key(rendered, 3), "tests:books:1:v3:9107");
        assert_eq!(route_key(rendered), "tests:books:1:9107");
        assert_eq!(version_key(b"tests:books:"), "tests:books:version");
    }

    #[test]
    fn long_or_unprintable_keys_become_an_md5() {
        let long = [b"tests:books:1:".as_slice(), &[0xa5; 200]].concat();
        for key in [
            native_key(&long, 1),
            route_key(&long),
            native_key(b"my app:x:1:\x01", 1),
        ] {
            assert!(key.starts_with("cachemacro:md5:"), "{key}");
            assert_eq!(key.len(), "cachemacro:md5:".len() + 32);
        }
        assert_ne!(native_key(&long, 1), native_key(&long, 2));
        assert_eq!(native_key(&long, 1), native_key(&long, 1));
    }

    #[test]
    fn a_version_is_read_once_per_refresh_and_a_failed_read_keeps_the_last() {
        let versions = NamespaceVersions::new(Duration::from_millis(100));
        assert_eq!(versions.current(b"a:b:", || Ok::<_, ()>(4)), 4);
        assert_eq!(
            versions.current(b"a:b:", || -> Result<u64, ()> { panic!("fresh") }),
            4
        );
        assert_eq!(
            versions.current(b"a:c:", || Err(())),
            0,
            "unknown and unreadable"
        );
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(versions.current(b"a:b:", || Err(())), 4);
        versions.bumped(b"a:b:", 5);
        assert_eq!(
            versions.current(b"a:b:", || -> Result<u64, ()> { panic!("fresh") }),
            5
        );
    }

    /// A thread refreshing the known version 1 of `a:b:` to `read`, held inside the read
    /// until the test passes `reading` and then `done`.
    struct Refresh {
        versions: Arc<NamespaceVersions>,
        reading: Arc<Barrier>,
        done: Arc<Barrier>,
        refresher: std::thread::JoinHandle<u64>,
    }

    fn refresh_in_flight(read: u64) -> Refresh {
        let versions = Arc::new(NamespaceVersions::new(Duration::ZERO));
        versions.bumped(b"a:b:", 1);
        let (reading, done) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let refresher = {
            let (versions, reading, done) = (
                Arc::clone(&versions),
                Arc::clone(&reading),
                Arc::clone(&done),
            );
            std::thread::spawn(move || {
                versions.current(b"a:b:", || {
                    reading.wait();
                    done.wait();
                    Ok::<_, ()>(read)
                })
            })
        };
        Refresh {
            versions,
            reading,
            done,
            refresher,
        }
    }

    /// While one caller re-reads a stale version, the others answer with the known one
    /// at once.
    #[test]
    fn callers_do_not_wait_for_another_callers_refresh() {
        let Refresh {
            versions,
            reading,
            done,
            refresher,
        } = refresh_in_flight(2);
        reading.wait();
        assert_eq!(
            versions.current(b"a:b:", || -> Result<u64, ()> { panic!("in flight") }),
            1
        );
        done.wait();
        assert_eq!(refresher.join().unwrap(), 2);
    }

    /// A read that started before a `clear` must not overwrite the version it set.
    #[test]
    fn a_clear_overtakes_a_read_in_flight() {
        let Refresh {
            versions,
            reading,
            done,
            refresher,
        } = refresh_in_flight(1);
        reading.wait();
        versions.bumped(b"a:b:", 2);
        done.wait();
        assert_eq!(refresher.join().unwrap(), 2);
    }
}
