//! A Redis Sentinel group of its own for a test: a master, one replica and three
//! sentinels (quorum 2) on free loopback ports, every process killed when the handle
//! drops.
//!
//! Sentinel's timings are shortened so that a failover is quick: the master is declared
//! down after 1 s, a failover times out after 3 s, and (`SENTINEL DEBUG`, Redis 7) the
//! sentinels poll `INFO` every 250 ms. The publish period stays at its 2 s: a demoted
//! master is reconfigured as a replica (which disconnects its clients) four publish
//! periods after the promotion, but a sentinel that has not yet heard of the promotion
//! waits the same four periods before turning the promoted node back into a replica,
//! and with a short period it sometimes hears too late. A failover thus settles in about
//! 9 s.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{free_port, redis_cli, signal, wait_for_port, RedisServer};

/// The name the sentinels monitor the master under.
const MASTER_NAME: &str = "cachemacro";
/// How long `start` and `failover` wait for the sentinels before giving up.
const DEADLINE: Duration = Duration::from_secs(30);

/// Two `redis-server` nodes, one master and one replica of it, watched by three
/// sentinels that promote the replica when the master fails (or when asked to, with
/// [`failover`](Self::failover)).
///
/// ```no_run
/// use cachemacro_test_support::sentinel::SentinelGroup;
///
/// let mut group = SentinelGroup::start();
/// let before = group.master().port;
/// group.failover();
/// assert_ne!(group.master().port, before);
/// ```
pub struct SentinelGroup {
    /// The two data nodes; which one is master changes with each failover.
    pub nodes: [RedisServer; 2],
    sentinels: Vec<SentinelProcess>,
}

/// One `redis-server --sentinel` process with its config file (which Sentinel rewrites).
struct SentinelProcess {
    port: u16,
    process: Child,
    dir: PathBuf,
}

impl SentinelGroup {
    /// Starts the master, its replica and three sentinels, and waits (at most 30 s) until
    /// the replica is in sync and every sentinel knows the replica and the two other
    /// sentinels, so that a failover can start at once.
    ///
    /// ```no_run
    /// let group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// assert_eq!(group.sentinel_urls().len(), 3);
    /// ```
    pub fn start() -> SentinelGroup {
        let master = RedisServer::start();
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let sentinels = (0..3)
            .map(|_| SentinelProcess::start(master.port))
            .collect();
        let group = SentinelGroup {
            nodes: [master, replica],
            sentinels,
        };
        let (master, replica) = (&group.nodes[0], &group.nodes[1]);
        group.wait_until("the replica to sync", || {
            replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        });
        group.wait_until("every sentinel to see the replica and the others", || {
            group.sentinels.iter().all(|sentinel| {
                let view = sentinel.cli(&["sentinel", "master", MASTER_NAME]);
                field(&view, "num-slaves") == Some("1")
                    && field(&view, "num-other-sentinels") == Some("2")
                    && sentinel.master_port() == Some(master.port)
            })
        });
        group
    }

    /// The name the sentinels know the master by, what `RedisStore::sentinel` takes.
    ///
    /// ```no_run
    /// let group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// assert!(!group.master_name().is_empty());
    /// ```
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// `redis://127.0.0.1:<port>/` of each sentinel.
    ///
    /// ```no_run
    /// let group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// assert!(group.sentinel_urls().iter().all(|url| url.starts_with("redis://")));
    /// ```
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("redis://127.0.0.1:{}/", sentinel.port))
            .collect()
    }

    /// The node the first sentinel names master now.
    ///
    /// ```no_run
    /// let group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// assert_eq!(group.master().port, group.nodes[0].port); // until a failover
    /// ```
    pub fn master(&self) -> &RedisServer {
        let port = self.sentinels[0].master_port();
        self.nodes
            .iter()
            .find(|node| Some(node.port) == port)
            .expect("the sentinels name one of the two nodes")
    }

    /// The node that is not [`master`](Self::master).
    ///
    /// ```no_run
    /// let group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// assert_eq!(group.replica().port, group.nodes[1].port); // until a failover
    /// ```
    pub fn replica(&self) -> &RedisServer {
        let master = self.master().port;
        self.nodes
            .iter()
            .find(|node| node.port != master)
            .expect("two nodes")
    }

    /// Makes the replica master (`SENTINEL FAILOVER`, retried while the sentinels are not
    /// ready for it) and waits, at most 30 s, until every sentinel names it, it reports
    /// `role:master`, and the old master reports `role:slave`. Until that last step the
    /// old master still takes writes (split brain, about 8 s); the sentinels'
    /// reconfiguring it as a replica also disconnects its clients.
    ///
    /// ```no_run
    /// let mut group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// let promoted = group.replica().port;
    /// group.failover();
    /// assert_eq!(group.master().port, promoted);
    /// ```
    pub fn failover(&mut self) {
        let demoted = self.master().port;
        self.promote_replica();
        let demoted = self.replica_at(demoted);
        self.wait_until("the old master to become a replica", || {
            demoted.cli(&["info", "replication"]).contains("role:slave")
        });
    }

    /// The first half of [`failover`](Self::failover): returns, within 30 s, as soon as
    /// every sentinel names the replica and it reports `role:master`, while the old
    /// master (now [`replica`](Self::replica)) most likely still is one and takes writes.
    ///
    /// ```no_run
    /// let mut group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// let old_master = group.master().port;
    /// group.promote_replica();
    /// assert_eq!(group.replica().port, old_master);
    /// ```
    pub fn promote_replica(&mut self) {
        let promoted = self.replica().port;
        // Refused (`INPROG`, `NOGOODSLAVE`) while a previous failover settles or before
        // the sentinels have seen the replica in sync.
        self.wait_until("a sentinel to start the failover", || {
            self.sentinels[0]
                .cli(&["sentinel", "failover", MASTER_NAME])
                .trim()
                == "OK"
        });
        self.wait_for_promotion(promoted);
    }

    /// Kills the master (as a crash would) and waits, at most 30 s, until the sentinels
    /// have agreed it is down and every one of them names the replica, which reports
    /// `role:master`. The killed node stays down.
    ///
    /// ```no_run
    /// let mut group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// let promoted = group.replica().port;
    /// group.kill_master();
    /// assert_eq!(group.master().port, promoted);
    /// ```
    pub fn kill_master(&mut self) {
        let (killed, promoted) = (self.master().port, self.replica().port);
        for node in &mut self.nodes {
            if node.port == killed {
                node.kill();
            }
        }
        self.wait_for_promotion(promoted);
    }

    /// Waits until every sentinel names the node on `promoted` and it reports
    /// `role:master`.
    fn wait_for_promotion(&self, promoted: u16) {
        let node = self.replica_at(promoted);
        self.wait_until("the sentinels to name the promoted node", || {
            self.sentinels
                .iter()
                .all(|sentinel| sentinel.master_port() == Some(promoted))
                && node.cli(&["info", "replication"]).contains("role:master")
        });
    }

    fn replica_at(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.port == port)
            .expect("one of the two nodes")
    }

    /// Stops sentinel `index` without closing its sockets (`SIGSTOP`): it accepts
    /// connections and answers nothing, as a stalled or overloaded sentinel would, until
    /// [`resume_sentinel`](Self::resume_sentinel) (or dropping the group).
    ///
    /// ```no_run
    /// let mut group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// group.pause_sentinel(0);
    /// group.resume_sentinel(0);
    /// ```
    pub fn pause_sentinel(&mut self, index: usize) {
        signal(self.sentinels[index].process.id(), "-STOP");
    }

    /// Lets a [`pause_sentinel`](Self::pause_sentinel)d sentinel go on.
    pub fn resume_sentinel(&mut self, index: usize) {
        signal(self.sentinels[index].process.id(), "-CONT");
    }

    /// Waits (at most 30 s) until the replica has every write the master had taken when
    /// called: its link is up and its replication offset has reached the master's. A
    /// failover loses what the replica had not received, as in production.
    ///
    /// ```no_run
    /// let mut group = cachemacro_test_support::sentinel::SentinelGroup::start();
    /// group.master().cli(&["set", "shelf", "7"]);
    /// group.wait_for_replica();
    /// group.failover();
    /// assert_eq!(group.master().cli(&["get", "shelf"]).trim(), "7");
    /// ```
    pub fn wait_for_replica(&self) {
        let taken = replication_field(self.master(), "master_repl_offset");
        let replica = self.replica();
        self.wait_until("the replica to catch up with the master", || {
            let status = replica.cli(&["info", "replication"]);
            status.contains("master_link_status:up")
                && replication_field(replica, "slave_repl_offset") >= taken
        });
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "waited {DEADLINE:?} for {what}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl SentinelProcess {
    fn start(master_port: u16) -> SentinelProcess {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("cachemacro-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\n\
                 bind 127.0.0.1\n\
                 dir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 3000\n",
                dir = dir.display()
            ),
        )
        .expect("sentinel config file");
        let process = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed: run scripts/test, or apt-get install redis-server",
            );
        let sentinel = SentinelProcess { port, process, dir };
        wait_for_port(port);
        // Redis 7 lets the period be shortened; older servers keep the default 10 s (and
        // their failovers take longer to start and to settle).
        sentinel.cli(&["sentinel", "debug", "info-period", "250"]);
        sentinel
    }

    fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// The master's port as this sentinel knows it.
    fn master_port(&self) -> Option<u16> {
        self.cli(&["sentinel", "get-master-addr-by-name", MASTER_NAME])
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value after `name` in `redis-cli`'s one-item-per-line answer to `SENTINEL MASTER`.
fn field<'a>(view: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = view.lines().map(str::trim);
    lines.find(|line| *line == name)?;
    lines.next()
}

/// A number from `INFO replication` of `node` (0 when it is missing).
fn replication_field(node: &RedisServer, name: &str) -> u64 {
    node.cli(&["info", "replication"])
        .lines()
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}
