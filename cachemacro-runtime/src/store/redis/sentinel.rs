//! Finding the current master of a Sentinel-managed Redis: asked anew for every connection
//! the store opens, so that a connection opened after a failover goes to the new master.
//!
//! redis-rs' [`Sentinel`] asks each sentinel in turn for the master (`SENTINEL MASTERS`),
//! skips one it flags down, and checks with `ROLE` that the node it names is a master.
//! Its blocking lookup opens connections with no connect or read timeout, so a stalled
//! sentinel would hang a sync caller; the async lookup is bounded, so both kinds of
//! caller use that one, on a runtime of the store's own: the sentinel connections it
//! caches then outlive any caller's runtime.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Client, RedisConnectionInfo, RedisError, RedisResult};

use crate::store::encoded::bridge::OwnRuntime;

/// The sentinels watching one master, and how to log in to whichever node is master.
pub(super) struct Sentinels {
    /// The name the sentinels monitor the master under.
    pub(super) master_name: String,
    /// How many sentinels were given, for describing the store.
    pub(super) count: usize,
    /// Database number and credentials for the master (not the sentinels).
    master: SentinelNodeConnectionInfo,
    /// `Sentinel` caches one connection per sentinel and so needs `&mut` for a lookup:
    /// lookups run one at a time, and a slow one holds up the others only within their
    /// own time limit.
    sentinel: Arc<tokio::sync::Mutex<Sentinel>>,
    runtime: OwnRuntime,
    /// The most one lookup may take, all sentinels and the `ROLE` check included.
    pub(super) budget: Duration,
}

impl Sentinels {
    pub(super) fn new(
        urls: &[String],
        master_name: String,
        master: RedisConnectionInfo,
        budget: Duration,
    ) -> RedisResult<Sentinels> {
        Ok(Sentinels {
            master_name,
            count: urls.len(),
            master: SentinelNodeConnectionInfo::default().set_redis_connection_info(master),
            sentinel: Arc::new(tokio::sync::Mutex::new(Sentinel::build(urls.to_vec())?)),
            runtime: OwnRuntime::new("cachemacro-redis-sentinel"),
            budget,
        })
    }

    /// A client for the current master, for a sync caller.
    pub(super) fn master_blocking(&self) -> RedisResult<Client> {
        self.runtime
            .block_on(self.lookup())
            .unwrap_or_else(|error| Err(io::Error::other(error.to_string()).into()))
    }

    /// A client for the current master, for an async caller.
    pub(super) async fn master(&self) -> RedisResult<Client> {
        self.runtime
            .run(self.lookup())
            .await
            .unwrap_or_else(|error| Err(io::Error::other(error.to_string()).into()))
    }

    fn lookup(&self) -> impl Future<Output = RedisResult<Client>> + Send + 'static {
        let sentinel = Arc::clone(&self.sentinel);
        let (name, master, budget) = (self.master_name.clone(), self.master.clone(), self.budget);
        async move {
            let found = async {
                let mut sentinel = sentinel.lock().await;
                sentinel.async_master_for(&name, Some(&master)).await
            };
            match tokio::time::timeout(budget, found).await {
                Ok(client) => client,
                Err(_) => Err(RedisError::from(io::Error::other(format!(
                    "no sentinel named a reachable master `{name}` within {budget:?}"
                )))),
            }
        }
    }
}
