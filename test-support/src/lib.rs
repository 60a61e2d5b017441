//! Real servers for the integration tests, the benchmarks and the measuring examples:
//! each caller starts its own process on a free loopback port, in a temporary directory,
//! and it is killed when the handle drops. Nothing needs to be running beforehand, and
//! two test binaries running at once never share a server.
//!
//! ```no_run
//! use cachemacro_test_support::{MemcachedServer, RedisServer};
//!
//! let redis = RedisServer::start();
//! let memcached = MemcachedServer::start();
//! println!("{} and {}", redis.url(), memcached.address());
//! ```

pub mod instances;
pub mod postgres;
mod race;
pub mod sentinel;

pub use race::race;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// The value the backend benchmarks cache: about five short strings, what the demo's
/// `nearby_stores(postcode, radius)` returns, so remote stores encode and move a value of
/// a realistic size.
///
/// ```
/// let shops = cachemacro_test_support::nearby_shops("EC1A", 5);
/// assert_eq!(shops.len(), 5);
/// assert_eq!(shops[0], "Angel EC1A 5");
/// ```
pub fn nearby_shops(postcode: &str, radius: u32) -> Vec<String> {
    [
        "Angel",
        "Barbican",
        "Clerkenwell",
        "Farringdon",
        "Shoreditch",
    ]
    .iter()
    .map(|shop| format!("{shop} {postcode} {radius}"))
    .collect()
}

/// A `redis-server` process owned by a test, persisting nothing (`--save ""`, no AOF).
///
/// ```no_run
/// use cachemacro_test_support::RedisServer;
///
/// let mut server = RedisServer::start();
/// assert_eq!(server.cli(&["set", "hits", "10"]).trim(), "OK");
/// server.restart(); // empty again, same port
/// assert_eq!(server.cli(&["get", "hits"]).trim(), "");
/// ```
pub struct RedisServer {
    /// The loopback port it listens on.
    pub port: u16,
    process: Option<Child>,
    dir: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port; panics with a clear message if `redis-server` is
    /// not installed (`scripts/test` installs it).
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::RedisServer::start();
    /// assert_eq!(server.cli(&["ping"]).trim(), "PONG");
    /// ```
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments.
    ///
    /// ```no_run
    /// use cachemacro_test_support::RedisServer;
    ///
    /// let server = RedisServer::start_with(&["--maxmemory", "1mb"]);
    /// assert!(server.cli(&["config", "get", "maxmemory"]).contains("1048576"));
    /// ```
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("cachemacro-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut server = RedisServer {
            port,
            process: None,
            dir,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/`, the URL a `RedisStore` is built from.
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::RedisServer::start();
    /// assert!(server.url().starts_with("redis://127.0.0.1:"));
    /// ```
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (as a crash would) and waits until the port is closed.
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::RedisServer::start();
    /// server.kill();
    /// assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
    /// ```
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Stops the process without closing its sockets (`SIGSTOP`): connections are accepted
    /// by the kernel but nothing answers, as with a stalled or overloaded server, so every
    /// call waits out its timeout. [`resume`](Self::resume) (or dropping) lets it go on.
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::RedisServer::start();
    /// server.pause();
    /// server.resume();
    /// ```
    pub fn pause(&mut self) {
        if let Some(process) = &self.process {
            signal(process.id(), "-STOP");
        }
    }

    /// Lets a [`pause`](Self::pause)d server go on.
    pub fn resume(&mut self) {
        if let Some(process) = &self.process {
            signal(process.id(), "-CONT");
        }
    }

    /// Starts the server again on the same port, empty, and waits until it accepts.
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::RedisServer::start();
    /// server.kill();
    /// server.restart();
    /// assert_eq!(server.cli(&["ping"]).trim(), "PONG");
    /// ```
    pub fn restart(&mut self) {
        self.kill();
        let process = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed: run scripts/test, or apt-get install redis-server",
            );
        self.process = Some(process);
        wait_for_port(self.port);
    }
}

/// Three `redis-server` processes joined into a Redis Cluster with `redis-cli --cluster
/// create`, each owning a third of the hash slots.
///
/// ```no_run
/// let cluster = cachemacro_test_support::RedisCluster::start();
/// assert_eq!(cluster.urls().len(), 3);
/// ```
pub struct RedisCluster {
    /// The three nodes, each a primary without replicas.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the three nodes, joins them and waits until every node reports
    /// `cluster_state:ok` (at most 20 s).
    ///
    /// ```no_run
    /// let cluster = cachemacro_test_support::RedisCluster::start();
    /// assert!(cluster.nodes[0].cli(&["cluster", "info"]).contains("cluster_state:ok"));
    /// ```
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed with redis-server");
        assert!(created.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not converge within 20 s"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// Every node's URL, what `RedisStore::cluster` is built from.
    ///
    /// ```no_run
    /// let cluster = cachemacro_test_support::RedisCluster::start();
    /// assert!(cluster.urls().iter().all(|url| url.starts_with("redis://")));
    /// ```
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl RedisServer {
    /// `redis-cli` against this server; its standard output.
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::RedisServer::start();
    /// assert_eq!(server.cli(&["dbsize"]).trim(), "0");
    /// ```
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }
}

/// `redis-cli -p <port> <args>`'s answer, for a data node and a sentinel alike.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed with redis-server");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `memcached` process owned by a test: TCP only, 16 MB of memory.
///
/// ```no_run
/// let server = cachemacro_test_support::MemcachedServer::start();
/// assert!(std::net::TcpStream::connect(server.address()).is_ok());
/// ```
pub struct MemcachedServer {
    /// The loopback port it listens on.
    pub port: u16,
    process: Option<Child>,
}

impl MemcachedServer {
    /// Starts a server on a free port; panics with a clear message if `memcached` is not
    /// installed (`scripts/test` installs it).
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::MemcachedServer::start();
    /// assert_ne!(server.port, 0);
    /// ```
    pub fn start() -> MemcachedServer {
        let port = free_port();
        let process = Command::new("memcached")
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-m",
                "16",
                "-u",
                "root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("memcached must be installed: run scripts/test, or apt-get install memcached");
        wait_for_port(port);
        MemcachedServer {
            port,
            process: Some(process),
        }
    }

    /// `127.0.0.1:<port>`, the form `MemcachedStore::builder` takes.
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::MemcachedServer::start();
    /// assert!(server.address().starts_with("127.0.0.1:"));
    /// ```
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the process without closing its sockets (`SIGSTOP`): connections are accepted
    /// by the kernel but nothing answers, as with a stalled or overloaded server, so every
    /// call waits out its timeout. [`resume`](Self::resume) (or dropping) lets it go on.
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::MemcachedServer::start();
    /// server.pause();
    /// server.resume();
    /// ```
    pub fn pause(&mut self) {
        if let Some(process) = &self.process {
            signal(process.id(), "-STOP");
        }
    }

    /// Lets a [`pause`](Self::pause)d server go on.
    pub fn resume(&mut self) {
        if let Some(process) = &self.process {
            signal(process.id(), "-CONT");
        }
    }

    /// Kills the server, as a crash or a dead node would, and waits for it to exit.
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::MemcachedServer::start();
    /// let address = server.address();
    /// server.kill();
    /// assert!(std::net::TcpStream::connect(address).is_err());
    /// ```
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to process `pid` with `kill(1)`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// A loopback port nothing listens on right now: for a server about to start, or for a
/// test that needs an address where no server answers.
///
/// Never the same port twice in one process. The kernel may hand a port it just handed
/// out to the next caller once the probe closes it, and tests run side by side: two
/// servers would then race for one port, the loser would exit unseen, and its test would
/// talk to the other test's server (and fail when that one is stopped).
///
/// ```
/// let port = cachemacro_test_support::free_port();
/// assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
/// assert_ne!(cachemacro_test_support::free_port(), port);
/// ```
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free loopback port");
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start within 10 s"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
