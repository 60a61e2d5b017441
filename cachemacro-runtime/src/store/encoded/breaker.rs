//! Fail fast in an outage: one circuit breaker per server, in front of every backend.
//!
//! After a failed or timed-out operation on a server, callers skip that server for
//! `retry_after` and get [`StoreError::Unavailable`] at once, which the memoization layer
//! turns into computing the value: an outage costs a caller the computation, not a
//! timeout. When `retry_after` has passed, exactly one caller probes the server; the
//! others keep skipping it until the probe answers, so no caller ever waits behind
//! another's reconnect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::StoreError;

/// `state` of a server that answers.
const CLOSED: u64 = 0;
/// `state` of a server whose probe is under way.
const PROBING: u64 = 1;

/// The breakers of one backend's servers, shared by every clone and namespace of a store.
#[derive(Debug)]
pub(crate) struct Breakers {
    servers: Box<[Breaker]>,
    retry_after: Duration,
    /// The instant that `state` values count from.
    epoch: Instant,
    /// Calls that reached a server (counted for the outage tests and benchmarks).
    attempts: Box<[AtomicU64]>,
}

#[derive(Debug, Default)]
struct Breaker {
    /// [`CLOSED`], [`PROBING`], or the time (nanoseconds after `epoch`, plus 2) until
    /// which the server is skipped. One atomic word, so that admitting a call on a healthy
    /// server is a single load.
    state: AtomicU64,
}

/// What a caller may do with a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The server is healthy: call it.
    Call,
    /// The server was down and `retry_after` has passed: this caller probes it.
    Probe,
}

impl Breakers {
    pub(crate) fn new(servers: usize, retry_after: Duration) -> Arc<Breakers> {
        Arc::new(Breakers {
            servers: (0..servers.max(1)).map(|_| Breaker::default()).collect(),
            retry_after,
            epoch: Instant::now(),
            attempts: (0..servers.max(1)).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 2
    }

    /// Whether a call may go to `server` now; the error names it when it must be skipped.
    pub(crate) fn admit(
        &self,
        server: usize,
        describe: impl Fn() -> String,
    ) -> Result<Admission, StoreError> {
        let breaker = &self.servers[server];
        let state = breaker.state.load(Ordering::Acquire);
        if state == CLOSED {
            self.attempts[server].fetch_add(1, Ordering::Relaxed);
            return Ok(Admission::Call);
        }
        if state != PROBING && self.now() >= state {
            // The first caller past the deadline takes the probe; the others skip on.
            if breaker
                .state
                .compare_exchange(state, PROBING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.attempts[server].fetch_add(1, Ordering::Relaxed);
                return Ok(Admission::Probe);
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} is marked down after a failure; skipping it for up to {:?}",
            describe(),
            self.retry_after
        )))
    }

    /// Records how a call to `server` ended: a fault that says the server is unwell opens
    /// its breaker for `retry_after`; any answer closes it.
    pub(crate) fn record<T>(
        &self,
        server: usize,
        admission: Admission,
        outcome: &Result<T, StoreError>,
        describe: impl Fn() -> String,
    ) {
        let breaker = &self.servers[server];
        match outcome {
            Err(error) if is_outage(error) => {
                let until = self.now() + self.retry_after.as_nanos() as u64;
                let previous = breaker.state.swap(until.max(PROBING + 1), Ordering::AcqRel);
                if previous == CLOSED || admission == Admission::Probe {
                    tracing::warn!(
                        server = %describe(),
                        %error,
                        retry_after = ?self.retry_after,
                        "cache server marked down; callers compute until it is probed again"
                    );
                }
            }
            _ => {
                if admission == Admission::Probe {
                    tracing::info!(server = %describe(), "cache server answers again");
                }
                if breaker.state.load(Ordering::Relaxed) != CLOSED {
                    breaker.state.store(CLOSED, Ordering::Release);
                }
            }
        }
    }

    /// Gives back a probe that was admitted but not made (the call failed on another
    /// server first), so that the next caller probes instead.
    pub(crate) fn release(&self, server: usize, admission: Admission) {
        if admission == Admission::Probe {
            let _ = self.servers[server].state.compare_exchange(
                PROBING,
                self.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// Calls that reached each server so far (skipped ones are not counted).
    pub(crate) fn attempts(&self) -> Vec<u64> {
        self.attempts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }
}

/// Whether `error` says the server is unwell (as opposed to bad input or bad bytes,
/// which say nothing about the server and must not make callers skip it).
fn is_outage(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Timeout(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Result<(), StoreError> {
        Err(StoreError::Unavailable("refused".to_owned()))
    }

    fn name() -> String {
        "test server".to_owned()
    }

    #[test]
    fn a_fault_skips_the_server_until_retry_after_then_one_caller_probes() {
        let breakers = Breakers::new(2, Duration::from_millis(200));
        let admission = breakers.admit(0, name).unwrap();
        assert_eq!(admission, Admission::Call);
        breakers.record(0, admission, &down(), name);
        assert!(breakers.admit(0, name).is_err(), "skipped while down");
        assert_eq!(
            breakers.admit(1, name).unwrap(),
            Admission::Call,
            "others unaffected"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(breakers.admit(0, name).unwrap(), Admission::Probe);
        assert!(breakers.admit(0, name).is_err(), "one probe at a time");
        breakers.record(0, Admission::Probe, &Ok(()), name);
        assert_eq!(breakers.admit(0, name).unwrap(), Admission::Call);
        assert_eq!(breakers.attempts(), vec![3, 1]);
    }

    #[test]
    fn a_failed_probe_skips_the_server_again() {
        let breakers = Breakers::new(1, Duration::from_millis(100));
        breakers.record(0, Admission::Call, &down(), name);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(breakers.admit(0, name).unwrap(), Admission::Probe);
        breakers.record(0, Admission::Probe, &down(), name);
        assert!(breakers.admit(0, name).is_err());
    }

    #[test]
    fn bad_bytes_and_bad_input_do_not_mark_a_server_down() {
        let breakers = Breakers::new(1, Duration::from_secs(60));
        let corrupt: Result<(), _> = Err(StoreError::Corrupt("garbage".to_owned()));
        breakers.record(0, Admission::Call, &corrupt, name);
        let overflow: Result<(), _> = Err(StoreError::Overflow);
        breakers.record(0, Admission::Call, &overflow, name);
        assert_eq!(breakers.admit(0, name).unwrap(), Admission::Call);
    }
}
