//! The ketama consistent-hashing ring, as libmemcached builds it.
//!
//! Each server contributes 160 points: for `i` in `0..40`, the MD5 of `"host:port-i"`
//! (`"host-i"` when the port is memcached's default 11211, as libmemcached writes it)
//! gives four 32-bit points, read little-endian from its 16 bytes. A key's point is the
//! first four bytes of its MD5, and the key goes to the first server point at or after
//! it, wrapping around. Adding or removing one of N servers therefore moves only about
//! 1/N of the keys.

use md5::{Digest, Md5};

const POINTS_PER_HASH: usize = 4;
const HASHES_PER_SERVER: usize = 40;
const DEFAULT_PORT: &str = "11211";

/// Servers' points on the ring, sorted.
#[derive(Debug, Clone)]
pub(crate) struct KetamaRing {
    points: Vec<(u32, usize)>,
}

impl KetamaRing {
    /// A ring over servers written `host:port`; a server's index in `servers` is what
    /// [`KetamaRing::server_for`] returns.
    pub(crate) fn new<S: AsRef<str>>(servers: &[S]) -> KetamaRing {
        let mut points = Vec::with_capacity(servers.len() * HASHES_PER_SERVER * POINTS_PER_HASH);
        for (index, server) in servers.iter().enumerate() {
            let server = server.as_ref();
            let label = match server.rsplit_once(':') {
                Some((host, DEFAULT_PORT)) => host,
                _ => server,
            };
            for hash_index in 0..HASHES_PER_SERVER {
                let digest = Md5::digest(format!("{label}-{hash_index}").as_bytes());
                for point in 0..POINTS_PER_HASH {
                    points.push((point_of(&digest, point), index));
                }
            }
        }
        points.sort_unstable();
        KetamaRing { points }
    }

    /// The index of the server that owns `key`, or `None` for an empty ring.
    pub(crate) fn server_for(&self, key: &[u8]) -> Option<usize> {
        let first = self.points.first()?;
        let point = point_of(&Md5::digest(key), 0);
        let at = self
            .points
            .partition_point(|&(server_point, _)| server_point < point);
        Some(self.points.get(at).unwrap_or(first).1)
    }
}

fn point_of(digest: &[u8], which: usize) -> u32 {
    let bytes = &digest[which * 4..which * 4 + 4];
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::KetamaRing;

    fn servers(count: usize) -> Vec<String> {
        (0..count).map(|n| format!("10.0.0.{n}:11211")).collect()
    }

    #[test]
    fn every_server_gets_160_points() {
        let ring = KetamaRing::new(&servers(3));
        assert_eq!(ring.points.len(), 3 * 160);
        for server in 0..3 {
            assert_eq!(ring.points.iter().filter(|p| p.1 == server).count(), 160);
        }
    }

    #[test]
    fn keys_spread_evenly_and_stay_put_when_a_server_leaves() {
        let three = KetamaRing::new(&servers(3));
        let keys: Vec<String> = (0..30_000).map(|n| format!("key:{n}")).collect();
        let mut counts = [0usize; 3];
        for key in &keys {
            counts[three.server_for(key.as_bytes()).unwrap()] += 1;
        }
        for count in counts {
            // Within 15% of an even 10 000 per server.
            assert!(
                (8_500..=11_500).contains(&count),
                "uneven spread: {counts:?}"
            );
        }

        // Dropping server 2: only its keys move; everyone else's stay.
        let two = KetamaRing::new(&servers(2));
        let moved = keys
            .iter()
            .filter(|key| three.server_for(key.as_bytes()) != two.server_for(key.as_bytes()))
            .count();
        assert_eq!(moved, counts[2]);
        assert!(
            moved * 100 <= keys.len() * 40,
            "{moved} of {} keys moved",
            keys.len()
        );
    }

    #[test]
    fn the_default_port_is_left_out_of_the_point_labels() {
        let with_port = KetamaRing::new(&["cache:11211"]);
        let without = KetamaRing::new(&["cache"]);
        assert_eq!(with_port.points, without.points);
        assert_ne!(KetamaRing::new(&["cache:11212"]).points, without.points);
    }

    /// Vectors from libmemcached itself (`scripts/ketama_vectors.py`): the keys a
    /// reference client stored on each of three real servers.
    #[test]
    fn routes_every_key_where_libmemcached_does() {
        let vectors = include_str!("ketama_vectors.txt");
        let servers = ["127.0.0.1:11211", "127.0.0.1:21212", "127.0.0.1:21213"];
        let ring = KetamaRing::new(&servers);
        let mut checked = 0;
        for line in vectors.lines().filter(|line| !line.starts_with('#')) {
            let (key, server) = line.split_once('\t').expect("key<TAB>server");
            let expected: usize = server.parse().expect("a server index");
            assert_eq!(ring.server_for(key.as_bytes()), Some(expected), "key {key}");
            checked += 1;
        }
        assert_eq!(checked, 300);
    }

    #[test]
    fn an_empty_ring_routes_nowhere() {
        assert_eq!(KetamaRing::new::<&str>(&[]).server_for(b"key"), None);
    }
}
