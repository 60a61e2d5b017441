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
//!
//! A failover does not break the connections to the old master at once: the sentinels
//! demote it only some seconds later (four publish periods, 8 s by default), and until
//! then it takes writes that the new master never sees. So a store also asks, at most
//! once per `recheck` and in the background, whether the sentinels name another master
//! than the one its connections reach; if they do, the next operation replaces them
//! ([`Sentinels::master_moved`]).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Client, ConnectionAddr, RedisConnectionInfo, RedisError, RedisResult};

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
    /// Which master the sentinels named last, and whether that changed.
    watch: Arc<MasterWatch>,
    /// How often operations ask whether the master moved.
    recheck: Duration,
    /// When the next operation asks, in milliseconds since `started`.
    next_check: AtomicU64,
    started: Instant,
}

/// The master the last lookup found, shared with the lookups running on the runtime.
#[derive(Default)]
struct MasterWatch {
    named: Mutex<Option<ConnectionAddr>>,
    /// A lookup found another master than the one before it: the connections opened
    /// before reach the old one.
    moved: AtomicBool,
}

impl MasterWatch {
    fn found(&self, master: &Client) {
        let address = master.get_connection_info().addr().clone();
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if named.as_ref().is_some_and(|before| *before != address) {
            self.moved.store(true, Ordering::Release);
        }
        *named = Some(address);
    }
}

impl Sentinels {
    pub(super) fn new(
        urls: &[String],
        master_name: String,
        master: RedisConnectionInfo,
        each: Duration,
        recheck: Duration,
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
            watch: Arc::default(),
            recheck,
            next_check: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Whether the sentinels named another master since the connections were opened:
    /// then the caller replaces them. Called by every operation; at most once per
    /// `recheck` one of them starts a lookup in the background, whose answer a later
    /// operation reads here. Connects look the master up anyway, so nothing is asked
    /// before the first one.
    pub(super) fn master_moved(&self) -> bool {
        // Read before it is taken: a store on every operation would bounce the flag's
        // line between the cores that call.
        if self.watch.moved.load(Ordering::Acquire)
            && self.watch.moved.swap(false, Ordering::AcqRel)
        {
            return true;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let due = self.next_check.load(Ordering::Relaxed);
        let connected = || {
            let named = self.watch.named.lock();
            named.unwrap_or_else(|e| e.into_inner()).is_some()
        };
        if now >= due
            && connected()
            && self
                .next_check
                .compare_exchange(
                    due,
                    now + self.recheck.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            if let Ok(runtime) = self.runtime.handle() {
                // A lookup that fails changes nothing: the connections stay until they break.
                let lookup = self.lookup();
                runtime.spawn(async move { drop(lookup.await) });
            }
        }
        false
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
        let watch = Arc::clone(&self.watch);
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
                        watch.found(&client);
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
