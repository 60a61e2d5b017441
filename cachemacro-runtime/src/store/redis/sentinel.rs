//! Finding the current master of a Sentinel-managed Redis: asked anew for every connection
//! the store opens, so that a connection opened after a failover goes to the new master.
//!
//! Each sentinel is asked in turn, starting with the one that answered last, and gets the
//! connect timeout to answer, so a dead or stalled sentinel costs one lookup that much
//! and the next lookups nothing. The asking is redis-rs' [`Sentinel`], one per sentinel:
//! `SENTINEL MASTERS`, the master of that name unless the sentinel flags it down, then
//! `ROLE` on the node named, which must say master. redis-rs' blocking lookup opens its
//! connections with no timeout at all, so both kinds of caller use the async one, on a
//! runtime of the store's own: the sentinel connections it caches then outlive any
//! caller's runtime.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Client, RedisConnectionInfo, RedisError, RedisResult};

use crate::store::encoded::bridge::OwnRuntime;

/// The sentinels watching one master, and how to log in to whichever node is master.
pub(super) struct Sentinels {
    /// The name the sentinels monitor the master under.
    pub(super) master_name: String,
    /// Database number and credentials for the master (not the sentinels).
    master: SentinelNodeConnectionInfo,
    /// One per sentinel URL, in the order given. A `Sentinel` caches its connection and
    /// so needs `&mut` for a lookup: lookups of one sentinel run one at a time.
    sentinels: Arc<[tokio::sync::Mutex<Sentinel>]>,
    /// The sentinel that answered last, asked first next time.
    answered: Arc<AtomicUsize>,
    runtime: OwnRuntime,
    /// How long one sentinel may take to name a master.
    each: Duration,
}

impl Sentinels {
    pub(super) fn new(
        urls: &[String],
        master_name: String,
        master: RedisConnectionInfo,
        each: Duration,
    ) -> RedisResult<Sentinels> {
        let sentinels = urls
            .iter()
            .map(|url| {
                Ok(tokio::sync::Mutex::new(Sentinel::build(
                    vec![url.as_str()],
                )?))
            })
            .collect::<RedisResult<Arc<[_]>>>()?;
        if sentinels.is_empty() {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "at least one sentinel URL is needed",
            )));
        }
        Ok(Sentinels {
            master_name,
            master: SentinelNodeConnectionInfo::default().set_redis_connection_info(master),
            sentinels,
            answered: Arc::new(AtomicUsize::new(0)),
            runtime: OwnRuntime::new("cachemacro-redis-sentinel"),
            each,
        })
    }

    /// How many sentinels there are.
    pub(super) fn count(&self) -> usize {
        self.sentinels.len()
    }

    /// The most one lookup may take: every sentinel its turn.
    pub(super) fn budget(&self) -> Duration {
        self.each * self.sentinels.len() as u32
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
        let (sentinels, answered) = (Arc::clone(&self.sentinels), Arc::clone(&self.answered));
        let (name, master, each) = (self.master_name.clone(), self.master.clone(), self.each);
        async move {
            let first = answered.load(Ordering::Relaxed);
            let mut last_error = None;
            for turn in 0..sentinels.len() {
                let index = (first + turn) % sentinels.len();
                let asked = async {
                    let mut sentinel = sentinels[index].lock().await;
                    sentinel.async_master_for(&name, Some(&master)).await
                };
                match tokio::time::timeout(each, asked).await {
                    Ok(Ok(client)) => {
                        answered.store(index, Ordering::Relaxed);
                        return Ok(client);
                    }
                    Ok(Err(error)) => last_error = Some(error),
                    Err(_) => {
                        last_error = Some(RedisError::from(io::Error::other(format!(
                            "sentinel {index} named no master `{name}` within {each:?}"
                        ))))
                    }
                }
            }
            Err(last_error.expect("at least one sentinel"))
        }
    }
}
