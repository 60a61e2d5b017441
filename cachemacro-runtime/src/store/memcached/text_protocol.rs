//! memcached's text protocol on one connection: each command, and the pipelined batches.
//!
//! Every command is written with one `write_all` and its reply read back before the
//! connection is used again; a batch writes all of its commands at once and then reads
//! one reply per command, so it costs one round trip. A reply outside the protocol, or a
//! command the server refuses, leaves the connection in an unknown state: the pool drops
//! it ([`Fault`] says how the call failed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::StoreError;

/// Memcached reads an expiry above 30 days as a Unix timestamp.
const MAX_RELATIVE_EXPIRY: u64 = 30 * 24 * 3600;

/// How a command failed.
#[derive(Debug)]
pub(super) enum Fault {
    /// The connection broke or timed out: the server is unwell.
    Io(std::io::Error),
    /// The server refused the command (`ERROR`, `CLIENT_ERROR ..`, `SERVER_ERROR ..`),
    /// which says something about the command, not about the server's health.
    Refused(String),
    /// The reply is not memcached's protocol.
    Garbled(String),
    /// The exchange went as the protocol says, and its answer is an error of the store
    /// (a value that is not a counter, an overflow); the connection stays usable.
    Store(StoreError),
}

impl From<std::io::Error> for Fault {
    fn from(error: std::io::Error) -> Fault {
        Fault::Io(error)
    }
}

/// The answer to a storage command (`set`, `add`, `cas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreReply {
    Stored,
    /// `add` found the key taken.
    NotStored,
    /// `cas` found the key changed since the token was issued.
    Exists,
    /// `cas` found no key.
    NotFound,
}

/// The answer to `incr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Incremented {
    Counted(u64),
    NotFound,
    /// The key holds something that is not an unsigned decimal number.
    NotACounter,
}

/// A value read for an update: its bytes, its CAS id, and the expiry field that keeps
/// its remaining time to live when it is written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ForUpdate {
    pub(super) value: Vec<u8>,
    pub(super) unique: u64,
    pub(super) expiry: u32,
}

/// One `VALUE` block of a retrieval.
struct Retrieved {
    key: String,
    value: Vec<u8>,
    /// The CAS id, in answer to `gets`.
    unique: Option<u64>,
}

/// One text-protocol connection to a server, with read and write timeouts set.
pub(super) struct TextConnection {
    stream: BufReader<TcpStream>,
}

impl TextConnection {
    /// Connects to `address` (`host:port`), trying each address it resolves to within
    /// `connect_timeout`; every later read and write is bounded by `operation_timeout`.
    pub(super) fn open(
        address: &str,
        connect_timeout: Duration,
        operation_timeout: Duration,
    ) -> std::io::Result<TextConnection> {
        let mut last_error = None;
        for resolved in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&resolved, connect_timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(operation_timeout))?;
                    stream.set_write_timeout(Some(operation_timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(TextConnection {
                        stream: BufReader::new(stream),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    /// `get`: the value under `key`, if any.
    pub(super) fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        self.send(format!("get {key}\r\n").as_bytes())?;
        Ok(self
            .read_values()?
            .into_iter()
            .next()
            .map(|found| found.value))
    }

    /// One `get` of every key: `VALUE <key> <flags> <bytes>` blocks up to `END`, for the
    /// keys that hold something.
    pub(super) fn get_many(&mut self, keys: &[&str]) -> Result<HashMap<String, Vec<u8>>, Fault> {
        let mut command = b"get".to_vec();
        for key in keys {
            command.push(b' ');
            command.extend_from_slice(key.as_bytes());
        }
        command.extend_from_slice(b"\r\n");
        self.send(&command)?;
        Ok(self
            .read_values()?
            .into_iter()
            .map(|found| (found.key, found.value))
            .collect())
    }

    /// `gets`: the value under `key` with its CAS id.
    pub(super) fn gets(&mut self, key: &str) -> Result<Option<(Vec<u8>, u64)>, Fault> {
        self.send(format!("gets {key}\r\n").as_bytes())?;
        match self.read_values()?.into_iter().next() {
            Some(Retrieved {
                value,
                unique: Some(unique),
                ..
            }) => Ok(Some((value, unique))),
            Some(_) => Err(Fault::Garbled("a gets reply without a CAS id".to_owned())),
            None => Ok(None),
        }
    }

    /// The value under `key` with its CAS id and remaining time to live, from the meta
    /// command `mg` (memcached 1.6); a server without meta commands answers through
    /// `gets`, and the value is then written back without expiry.
    pub(super) fn get_for_update(&mut self, key: &str) -> Result<Option<ForUpdate>, Fault> {
        self.send(format!("mg {key} v c t\r\n").as_bytes())?;
        let line = self.read_line()?;
        if line == "EN" {
            return Ok(None);
        }
        if line == "ERROR" {
            return Ok(self.gets(key)?.map(|(value, unique)| ForUpdate {
                value,
                unique,
                expiry: 0,
            }));
        }
        let garbled = || Fault::Garbled(line.clone());
        let mut fields = line.split(' ');
        let (Some("VA"), Some(length)) = (fields.next(), fields.next()) else {
            return Err(refused_or(&line, garbled));
        };
        let length: usize = length.parse().map_err(|_| garbled())?;
        let (mut unique, mut remaining) = (None, None);
        for flag in fields {
            if let Some(cas) = flag.strip_prefix('c') {
                unique = cas.parse::<u64>().ok();
            } else if let Some(ttl) = flag.strip_prefix('t') {
                remaining = ttl.parse::<i64>().ok();
            }
        }
        let value = self.read_data(length)?;
        let (Some(unique), Some(remaining)) = (unique, remaining) else {
            return Err(garbled());
        };
        // `t-1`: no expiry. A value about to expire keeps at least a second.
        let expiry = u64::try_from(remaining).map_or(0, |seconds| {
            expiry_field(Some(Duration::from_secs(seconds)))
        });
        Ok(Some(ForUpdate {
            value,
            unique,
            expiry,
        }))
    }

    /// `set`, `add` or `cas` of one value.
    pub(super) fn store(
        &mut self,
        command: StorageCommand,
        key: &str,
        value: &[u8],
        expiry: u32,
    ) -> Result<StoreReply, Fault> {
        let mut out = Vec::with_capacity(key.len() + value.len() + 48);
        write_storage(&mut out, command, key, value, expiry);
        self.send(&out)?;
        let line = self.read_line()?;
        stored(&line)
    }

    /// `set` of one value.
    pub(super) fn set(&mut self, key: &str, value: &[u8], expiry: u32) -> Result<(), Fault> {
        match self.store(StorageCommand::Set, key, value, expiry)? {
            StoreReply::Stored => Ok(()),
            other => Err(Fault::Garbled(format!("{other:?} in answer to a set"))),
        }
    }

    /// `set` of every entry, pipelined: one write, then one `STORED` per entry.
    pub(super) fn set_many(&mut self, entries: &[(&str, &[u8])], expiry: u32) -> Result<(), Fault> {
        let mut out = Vec::new();
        for (key, value) in entries {
            write_storage(&mut out, StorageCommand::Set, key, value, expiry);
        }
        self.send(&out)?;
        for _ in entries {
            let line = self.read_line()?;
            if stored(&line)? != StoreReply::Stored {
                return Err(Fault::Garbled(line));
            }
        }
        Ok(())
    }

    /// `delete`: whether the key held something.
    pub(super) fn delete(&mut self, key: &str) -> Result<bool, Fault> {
        Ok(self.delete_many(&[key])? == 1)
    }

    /// `delete` of every key, pipelined: how many held something.
    pub(super) fn delete_many(&mut self, keys: &[&str]) -> Result<usize, Fault> {
        let mut out = Vec::new();
        for key in keys {
            out.extend_from_slice(format!("delete {key}\r\n").as_bytes());
        }
        self.send(&out)?;
        let mut deleted = 0;
        for _ in keys {
            match self.read_line()?.as_str() {
                "DELETED" => deleted += 1,
                "NOT_FOUND" => {}
                other => return Err(refused_or(other, || Fault::Garbled(other.to_owned()))),
            }
        }
        Ok(deleted)
    }

    /// `touch`: sets the expiry of an existing key; whether there was one.
    pub(super) fn touch(&mut self, key: &str, expiry: u32) -> Result<bool, Fault> {
        self.send(format!("touch {key} {expiry}\r\n").as_bytes())?;
        match self.read_line()?.as_str() {
            "TOUCHED" => Ok(true),
            "NOT_FOUND" => Ok(false),
            other => Err(refused_or(other, || Fault::Garbled(other.to_owned()))),
        }
    }

    /// `incr`: memcached's unsigned counter (which wraps past `u64::MAX`).
    pub(super) fn incr(&mut self, key: &str, amount: u64) -> Result<Incremented, Fault> {
        self.send(format!("incr {key} {amount}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if line == "NOT_FOUND" {
            return Ok(Incremented::NotFound);
        }
        if line.starts_with("CLIENT_ERROR cannot increment or decrement non-numeric value") {
            return Ok(Incremented::NotACounter);
        }
        line.parse()
            .map(Incremented::Counted)
            .map_err(|_| refused_or(&line, || Fault::Garbled(line.clone())))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        self.stream.get_mut().write_all(bytes)?;
        Ok(())
    }

    /// One reply line without its `\r\n`; a closed connection is an error.
    fn read_line(&mut self) -> Result<String, Fault> {
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        Ok(line)
    }

    /// A data block of `length` bytes and its `\r\n`.
    fn read_data(&mut self, length: usize) -> Result<Vec<u8>, Fault> {
        let mut data = vec![0; length + 2];
        self.stream.read_exact(&mut data)?;
        if !data.ends_with(b"\r\n") {
            return Err(Fault::Garbled("a data block without its \\r\\n".to_owned()));
        }
        data.truncate(length);
        Ok(data)
    }

    /// The `VALUE <key> <flags> <bytes> [<cas>]` blocks of a retrieval, up to `END`.
    fn read_values(&mut self) -> Result<Vec<Retrieved>, Fault> {
        let mut found = Vec::new();
        loop {
            let line = self.read_line()?;
            if line == "END" {
                return Ok(found);
            }
            let garbled = || Fault::Garbled(line.clone());
            let mut fields = line.split(' ');
            let (Some("VALUE"), Some(key), Some(_flags), Some(length)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(refused_or(&line, garbled));
            };
            let length: usize = length.parse().map_err(|_| garbled())?;
            let unique = fields.next().map(str::parse::<u64>).transpose();
            let unique = unique.map_err(|_| garbled())?;
            let key = key.to_owned();
            let value = self.read_data(length)?;
            found.push(Retrieved { key, value, unique });
        }
    }
}

/// The storage commands a value is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StorageCommand {
    Set,
    Add,
    /// Store only if the key's CAS id is still this one.
    Cas(u64),
}

/// `<command> <key> <flags> <expiry> <bytes> [<cas>]\r\n<data>\r\n`, flags always 0.
fn write_storage(out: &mut Vec<u8>, command: StorageCommand, key: &str, value: &[u8], expiry: u32) {
    let length = value.len();
    let header = match command {
        StorageCommand::Set => format!("set {key} 0 {expiry} {length}\r\n"),
        StorageCommand::Add => format!("add {key} 0 {expiry} {length}\r\n"),
        StorageCommand::Cas(unique) => format!("cas {key} 0 {expiry} {length} {unique}\r\n"),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn stored(line: &str) -> Result<StoreReply, Fault> {
    match line {
        "STORED" => Ok(StoreReply::Stored),
        "NOT_STORED" => Ok(StoreReply::NotStored),
        "EXISTS" => Ok(StoreReply::Exists),
        "NOT_FOUND" => Ok(StoreReply::NotFound),
        other => Err(refused_or(other, || Fault::Garbled(other.to_owned()))),
    }
}

/// A line that is one of the protocol's error replies is a refusal; anything else the
/// caller did not expect is garbled.
fn refused_or(line: &str, garbled: impl FnOnce() -> Fault) -> Fault {
    if line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR") {
        Fault::Refused(line.to_owned())
    } else {
        garbled()
    }
}

/// Memcached's expiry field: seconds (at least 1) up to 30 days, a Unix time beyond;
/// 0 for no expiry.
pub(super) fn expiry_field(ttl: Option<Duration>) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    let seconds = ttl.as_millis().div_ceil(1000).max(1) as u64;
    if seconds <= MAX_RELATIVE_EXPIRY {
        return seconds as u32;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    u32::try_from(now + seconds).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_whole_seconds_up_to_30_days_then_a_unix_time() {
        assert_eq!(expiry_field(None), 0);
        assert_eq!(expiry_field(Some(Duration::from_millis(1))), 1);
        assert_eq!(expiry_field(Some(Duration::from_millis(1_500))), 2);
        assert_eq!(
            expiry_field(Some(Duration::from_secs(MAX_RELATIVE_EXPIRY))),
            2_592_000
        );
        let beyond = expiry_field(Some(Duration::from_secs(MAX_RELATIVE_EXPIRY + 1)));
        assert!(beyond > 1_700_000_000, "a Unix time, got {beyond}");
    }

    #[test]
    fn storage_commands_carry_their_length_and_cas_id() {
        let mut out = Vec::new();
        write_storage(&mut out, StorageCommand::Cas(42), "k", b"a\r\nb", 7);
        assert_eq!(out, b"cas k 0 7 4 42\r\na\r\nb\r\n");
    }

    #[test]
    fn error_replies_are_refusals_and_the_rest_is_garbled() {
        let garbled = || Fault::Garbled("x".to_owned());
        assert!(matches!(
            refused_or("SERVER_ERROR object too large for cache", garbled),
            Fault::Refused(_)
        ));
        assert!(matches!(refused_or("ERROR", garbled), Fault::Refused(_)));
        assert!(matches!(
            refused_or("HTTP/1.1 400", garbled),
            Fault::Garbled(_)
        ));
        assert_eq!(stored("EXISTS").unwrap(), StoreReply::Exists);
    }
}
