//! Application instances as real processes. A test that is about several instances of an
//! application (one computes, another reads its result; four race on one counter) starts
//! this same test binary again, once per instance, with only one test selected: the
//! binary's *instance entry*, a `#[test]` that does nothing in a normal run and plays the
//! role it is given in a child. No second program to build, no shell.
//!
//! The parent and its instances talk over the child's standard streams: an instance
//! reports `name value` lines on its stdout, and waits on its stdin for the lines the
//! parent sends, which is how instances started one after another are released at once.
//!
//! ```no_run
//! use cachemacro_test_support::instances::{self, Instance};
//!
//! /// The instance entry: a no-op unless this process was started as an instance.
//! #[test]
//! fn instance_entry() {
//!     match instances::role().as_deref() {
//!         None => {}
//!         Some("count") => {
//!             instances::wait_for("go");
//!             instances::report("counted", 42);
//!         }
//!         Some(other) => panic!("unknown role {other}"),
//!     }
//! }
//!
//! #[test]
//! fn two_instances_count() {
//!     let mut children: Vec<Instance> = (0..2)
//!         .map(|_| Instance::start("instance_entry", "count", &[]))
//!         .collect();
//!     children.iter_mut().for_each(|child| child.send("go"));
//!     for mut child in children {
//!         assert_eq!(child.expect("counted"), "42");
//!         child.finish();
//!     }
//! }
//! ```

use std::fmt::Display;
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

/// The environment variable that tells a child which role to play.
const ROLE: &str = "CACHEMACRO_INSTANCE_ROLE";

/// What starts a report line. libtest prints `test <name> ... ` before the entry's first
/// output, on the same line, so a report is found anywhere in its line.
const REPORT: &str = "@instance ";

/// The role this process was started for, in an instance; `None` in a normal test run.
///
/// ```no_run
/// if let Some(role) = cachemacro_test_support::instances::role() {
///     println!("this process plays {role}");
/// }
/// ```
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A setting the parent passed to this instance (see [`Instance::start`]).
///
/// ```no_run
/// let url = cachemacro_test_support::instances::setting("REDIS_URL");
/// ```
pub fn setting(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent passes {name} to its instances"))
}

/// In an instance: tells the parent `name` is `value`.
///
/// ```no_run
/// cachemacro_test_support::instances::report("calls", 0);
/// ```
pub fn report(name: &str, value: impl Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{REPORT}{name} {value}").expect("the parent reads the instance's stdout");
    out.flush().expect("the parent reads the instance's stdout");
}

/// In an instance: blocks until the parent [sends](Instance::send) `line`.
///
/// ```no_run
/// cachemacro_test_support::instances::wait_for("go");
/// ```
pub fn wait_for(line: &str) {
    let mut read = String::new();
    loop {
        read.clear();
        let count = std::io::stdin()
            .read_line(&mut read)
            .expect("the parent holds the instance's stdin");
        assert!(count > 0, "the parent closed stdin before sending {line:?}");
        if read.trim_end() == line {
            return;
        }
    }
}

/// One instance: this test binary running only its instance entry, in a role.
///
/// ```no_run
/// use cachemacro_test_support::instances::Instance;
///
/// let mut reader = Instance::start("instance_entry", "read", &[]);
/// assert_eq!(reader.expect("calls"), "0");
/// reader.finish();
/// ```
pub struct Instance {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Everything the child wrote to stderr, collected by a thread so that a chatty child
    /// never blocks on a full pipe; shown when the child fails.
    stderr: Arc<Mutex<String>>,
}

impl Instance {
    /// Starts this test binary again with only the test `entry` selected, playing `role`,
    /// with `settings` in its environment (read with [`setting`]).
    ///
    /// ```no_run
    /// use cachemacro_test_support::instances::Instance;
    ///
    /// let mut reader = Instance::start("instance_entry", "read", &[("REDIS_URL", "redis://127.0.0.1:6379/")]);
    /// assert_eq!(reader.expect("calls"), "0");
    /// reader.finish();
    /// ```
    pub fn start(entry: &str, role: &str, settings: &[(&str, &str)]) -> Instance {
        let binary = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(binary)
            .args([entry, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .envs(settings.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start the {role} instance: {error}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut errors = BufReader::new(child.stderr.take().expect("piped"));
        let collected = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut line = String::new();
            while errors.read_line(&mut line).is_ok_and(|count| count > 0) {
                collected.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Instance {
            role: role.to_owned(),
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("piped")).lines(),
            stderr,
            child,
        }
    }

    /// The instance's next report, `(name, value)`; `None` once it has exited.
    ///
    /// ```no_run
    /// # let mut writer = cachemacro_test_support::instances::Instance::start("instance_entry", "write", &[]);
    /// while let Some((name, value)) = writer.next_report() {
    ///     println!("{name} = {value}");
    /// }
    /// ```
    pub fn next_report(&mut self) -> Option<(String, String)> {
        for line in self.stdout.by_ref() {
            let Ok(line) = line else { return None };
            if let Some(at) = line.find(REPORT) {
                let report = &line[at + REPORT.len()..];
                let (name, value) = report.split_once(' ').unwrap_or((report, ""));
                return Some((name.to_owned(), value.to_owned()));
            }
        }
        None
    }

    /// The value of the instance's next report named `name` (reports of other names
    /// before it are skipped). Panics, with the instance's stderr, if it exits first.
    ///
    /// ```no_run
    /// # let mut reader = cachemacro_test_support::instances::Instance::start("instance_entry", "read", &[]);
    /// let calls: u64 = reader.expect("calls").parse().unwrap();
    /// ```
    pub fn expect(&mut self, name: &str) -> String {
        while let Some((reported, value)) = self.next_report() {
            if reported == name {
                return value;
            }
        }
        let status = self.child.wait().ok();
        panic!(
            "the {} instance exited ({status:?}) before reporting {name}; its stderr:\n{}",
            self.role,
            self.stderr.lock().unwrap()
        );
    }

    /// Sends `line` to the instance, which is [waiting for](wait_for) it.
    ///
    /// ```no_run
    /// # let mut counter = cachemacro_test_support::instances::Instance::start("instance_entry", "count", &[]);
    /// counter.send("go");
    /// ```
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open until finish");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|error| panic!("the {} instance's stdin: {error}", self.role));
    }

    /// Kills the instance at once (SIGKILL), as a crash would, and reaps it.
    ///
    /// ```no_run
    /// # let mut writer = cachemacro_test_support::instances::Instance::start("instance_entry", "write", &[]);
    /// writer.kill();
    /// ```
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the instance to exit and panics, with its stderr, unless it succeeded.
    ///
    /// ```no_run
    /// # let reader = cachemacro_test_support::instances::Instance::start("instance_entry", "read", &[]);
    /// reader.finish();
    /// ```
    pub fn finish(mut self) {
        drop(self.stdin.take());
        for _ in self.stdout.by_ref() {}
        let status = self.child.wait().expect("the instance's exit status");
        assert!(
            status.success(),
            "the {} instance failed ({status}); its stderr:\n{}",
            self.role,
            self.stderr.lock().unwrap()
        );
    }
}

impl Drop for Instance {
    /// An instance left running by a failed test is killed with it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
