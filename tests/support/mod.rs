//! Real servers for the integration tests: each test starts its own process on a free
//! loopback port, in a temporary directory, and it is killed when the handle drops.

#![allow(dead_code)] // each test binary uses the part it needs

pub mod postgres;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The value the backend benchmarks cache: about five short strings, the seed article's
/// `nearby_stores(postcode, radius)`.
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

/// A `redis-server` process owned by a test.
pub struct RedisServer {
    pub port: u16,
    process: Option<Child>,
    dir: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port; panics with a clear message if `redis-server` is
    /// not installed (`scripts/test` installs it).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments.
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (as a crash would) and waits until the port is closed.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the server again on the same port, empty, and waits until it accepts.
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
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
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

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl RedisServer {
    /// `redis-cli` against this server; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed with redis-server");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `memcached` process owned by a test.
pub struct MemcachedServer {
    pub port: u16,
    process: Option<Child>,
}

impl MemcachedServer {
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

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
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
