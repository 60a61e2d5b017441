//! The connections to one memcached server: up to `pool_size` of them, opened as
//! concurrent calls need them.
//!
//! A caller takes an idle connection, or opens a new one while the pool has room: a
//! connect happens outside the pool's lock, so no caller ever waits behind another's
//! connect. Only when every connection is busy does a caller wait for one to come back,
//! and never longer than a connect and an operation take. Fail-fast after an outage is
//! not the pool's business: the adapter's breaker skips the server before it gets here.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::text_protocol::{Fault, TextConnection};
use crate::StoreError;

/// One server's connections.
pub(super) struct ConnectionPool {
    address: String,
    size: usize,
    connect_timeout: Duration,
    operation_timeout: Duration,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<TextConnection>,
    /// Connections that exist or are being opened, idle or not.
    open: usize,
}

/// A connection taken from the pool; dropped without [`Checkout::give_back`], it is
/// closed and its place freed (a connection whose exchange failed may be half-read).
struct Checkout<'a> {
    pool: &'a ConnectionPool,
    connection: Option<TextConnection>,
}

impl ConnectionPool {
    pub(super) fn new(
        address: String,
        size: usize,
        connect_timeout: Duration,
        operation_timeout: Duration,
    ) -> ConnectionPool {
        ConnectionPool {
            address,
            size: size.max(1),
            connect_timeout,
            operation_timeout,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// The server's `host:port`.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// Runs `exchange` on a connection of this pool. A fault of the connection (I/O, a
    /// refused command, a reply outside the protocol) closes it.
    pub(super) fn with_connection<T>(
        &self,
        exchange: impl FnOnce(&mut TextConnection) -> Result<T, Fault>,
    ) -> Result<T, StoreError> {
        let mut checkout = self.checkout()?;
        let connection = checkout
            .connection
            .as_mut()
            .expect("a checkout holds its connection until given back");
        match exchange(connection) {
            Ok(answer) => {
                checkout.give_back();
                Ok(answer)
            }
            Err(Fault::Store(error)) => {
                checkout.give_back();
                Err(error)
            }
            Err(fault) => Err(self.error(fault)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn checkout(&self) -> Result<Checkout<'_>, StoreError> {
        let patience = self.connect_timeout + self.operation_timeout;
        let deadline = Instant::now() + patience;
        let mut state = self.lock();
        loop {
            if let Some(connection) = state.idle.pop() {
                return Ok(Checkout {
                    pool: self,
                    connection: Some(connection),
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                let opened = TextConnection::open(
                    &self.address,
                    self.connect_timeout,
                    self.operation_timeout,
                );
                return match opened {
                    Ok(connection) => Ok(Checkout {
                        pool: self,
                        connection: Some(connection),
                    }),
                    Err(error) => {
                        self.release();
                        Err(self.connect_error(error))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Timeout(patience));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Frees the place of a connection that was closed or never opened.
    fn release(&self) {
        self.lock().open -= 1;
        self.returned.notify_one();
    }

    fn connect_error(&self, error: std::io::Error) -> StoreError {
        if is_timeout(&error) {
            StoreError::Timeout(self.connect_timeout)
        } else {
            StoreError::Unavailable(format!("memcached server {}: {error}", self.address))
        }
    }

    /// A fault as the store error it is: only a broken or silent connection and a reply
    /// outside the protocol say that the server is unwell.
    fn error(&self, fault: Fault) -> StoreError {
        let address = &self.address;
        match fault {
            Fault::Io(error) if is_timeout(&error) => StoreError::Timeout(self.operation_timeout),
            Fault::Io(error) => {
                StoreError::Unavailable(format!("memcached server {address}: {error}"))
            }
            Fault::Garbled(reply) => StoreError::Unavailable(format!(
                "memcached server {address} answered {reply:?}, which is not memcached's protocol"
            )),
            Fault::Refused(reply) => {
                StoreError::Other(format!("memcached server {address} refused: {reply}").into())
            }
            Fault::Store(error) => error,
        }
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

impl Checkout<'_> {
    fn give_back(mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool.lock().idle.push(connection);
            self.pool.returned.notify_one();
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if self.connection.take().is_some() {
            self.pool.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn a_refused_connect_is_unavailable_and_frees_its_place() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let pool = ConnectionPool::new(address, 1, Duration::from_secs(1), Duration::from_secs(1));
        for _ in 0..3 {
            let outcome = pool.with_connection(|_| Ok(()));
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "{outcome:?}"
            );
        }
        assert_eq!(pool.lock().open, 0);
    }

    /// With the only connection busy, a second caller waits for it rather than opening
    /// another, and gets it when the first is done.
    #[test]
    fn a_full_pool_hands_the_connection_over() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = std::thread::spawn(move || {
            let connections: Vec<_> = listener.incoming().take(1).collect();
            std::thread::sleep(Duration::from_millis(500));
            drop(connections);
        });
        let pool = Arc::new(ConnectionPool::new(
            address,
            1,
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        let barrier = Arc::new(Barrier::new(2));
        let first = {
            let (pool, barrier) = (Arc::clone(&pool), Arc::clone(&barrier));
            std::thread::spawn(move || {
                pool.with_connection(|_| {
                    barrier.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    Ok(1)
                })
            })
        };
        barrier.wait();
        assert_eq!(pool.with_connection(|_| Ok(2)).unwrap(), 2);
        assert_eq!(first.join().unwrap().unwrap(), 1);
        assert_eq!(pool.lock().open, 1, "one connection served both");
        accepted.join().unwrap();
    }
}
