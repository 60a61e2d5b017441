//! A PostgreSQL server of its own for a test: `initdb` in a temporary directory, then
//! `pg_ctl start` on a free loopback port; stopped and removed when the handle drops.
//!
//! `initdb` refuses to run as root, and CI runs as root: then every PostgreSQL binary
//! runs as the `postgres` system user that Debian's package creates (through `runuser`,
//! or `su` where there is no `runuser`), and the directory is handed to that user.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::free_port;

/// A `postgres` process owned by a test, with a database `postgres` that the role
/// `postgres` reaches without a password (`trust` on loopback only).
///
/// ```no_run
/// use cachemacro_test_support::postgres::PostgresServer;
///
/// let mut server = PostgresServer::start();
/// println!("{}", server.url()); // what `SqlStore::builder` takes
/// server.stop_immediately(); // a crash: no checkpoint
/// server.restart(); // recovers from the WAL, same port and data
/// ```
pub struct PostgresServer {
    /// The loopback port it listens on.
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    running: bool,
}

impl PostgresServer {
    /// Initialises a cluster and starts it; panics with a clear message if PostgreSQL
    /// is not installed (`scripts/test` installs it).
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::postgres::PostgresServer::start();
    /// assert_ne!(server.port, 0);
    /// ```
    pub fn start() -> PostgresServer {
        let bin = newest_bin_dir();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cachemacro-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        if as_root() {
            run_checked(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        let server = PostgresServer {
            port,
            bin,
            dir,
            running: false,
        };
        server.run(
            "initdb",
            &[
                "-D",
                server.data().to_str().expect("UTF-8 temp path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        let mut server = server;
        server.restart();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    ///
    /// ```no_run
    /// let server = cachemacro_test_support::postgres::PostgresServer::start();
    /// assert!(server.url().ends_with("/postgres"));
    /// ```
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m immediate`: every backend is killed at once, without a
    /// checkpoint, as in a crash; the next start recovers from the WAL.
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::postgres::PostgresServer::start();
    /// server.stop_immediately();
    /// assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
    /// ```
    pub fn stop_immediately(&mut self) {
        if self.running {
            self.run(
                "pg_ctl",
                &[
                    "stop",
                    "-D",
                    self.data().to_str().expect("UTF-8 temp path"),
                    "-m",
                    "immediate",
                    "-w",
                ],
            );
            self.running = false;
        }
    }

    /// Starts the server (again) on the same port with the same data, and waits until
    /// it accepts connections.
    ///
    /// `fsync=off` only skips flushing the OS cache, which a killed server does not lose,
    /// so committed rows survive [`stop_immediately`](Self::stop_immediately); that is
    /// why `synchronous_commit` stays on (off, the last commits would be lost).
    ///
    /// ```no_run
    /// let mut server = cachemacro_test_support::postgres::PostgresServer::start();
    /// server.stop_immediately();
    /// server.restart();
    /// assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok());
    /// ```
    pub fn restart(&mut self) {
        self.stop_immediately();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {dir} -c fsync=off \
             -c full_page_writes=off -c shared_buffers=16MB -c max_connections=60",
            port = self.port,
            dir = self.dir.display(),
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                self.data().to_str().expect("UTF-8 temp path"),
                "-l",
                log.to_str().expect("UTF-8 temp path"),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
            ],
        );
        self.running = true;
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// One of PostgreSQL's programs, to run as `postgres` when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if !as_root() {
            Command::new(&program)
        } else if which("runuser") {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            let mut line = shell_quote(program.to_str().expect("UTF-8 path"));
            for arg in args {
                line.push(' ');
                line.push_str(&shell_quote(arg));
            }
            let mut command = Command::new("su");
            command.args(["postgres", "-s", "/bin/sh", "-c", &line]);
            return command;
        };
        command.args(args);
        command
    }

    /// Runs one of PostgreSQL's programs; panics with its output and the server log if
    /// it fails.
    fn run(&self, program: &str, args: &[&str]) {
        // `pg_ctl start` leaves the server holding the pipes it inherited: with
        // captured standard output the test would wait for the server to exit.
        let output = self
            .command(program, args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|error| panic!("running {program}: {error}"));
        if !output.status.success() {
            panic!(
                "{program} {args:?} failed ({}): {}\nserver log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            // Never panic here: a panicking test is already unwinding through this.
            let _ = self
                .command(
                    "pg_ctl",
                    &[
                        "stop",
                        "-m",
                        "immediate",
                        "-w",
                        "-D",
                        data.to_str().unwrap_or(""),
                    ],
                )
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `/usr/lib/postgresql/<newest major>/bin`, where Debian installs the server.
fn newest_bin_dir() -> PathBuf {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major);
    match installed {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL must be installed: run scripts/test, or apt-get install postgresql \
             (no /usr/lib/postgresql/<version>/bin/initdb found)"
        ),
    }
}

fn as_root() -> bool {
    let output: Option<Output> = Command::new("id").arg("-u").output().ok();
    output.is_some_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn run_checked(command: &mut Command) {
    let status = command.status().expect("running a setup command");
    assert!(status.success(), "{command:?} failed: {status}");
}
