//! What a `#[memoize]` hit through `RedisStore` / `MemcachedStore` costs beyond
//! the raw client's `GET` + decode of the same bytes (target: <= 10 %).
//!
//! Wall time on a shared two-core machine swings by more than 10 % between runs, so this
//! measures two ways (BENCHMARKS.md, "Backends", has the figures):
//!
//! - **instructions** (repeatable): run one contender under callgrind, counting only the
//!   timed loop:
//!
//!   ```text
//!   cargo build -p cachemacro-benches --release --features redis,memcached --example backend_overhead
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
//!       --toggle-collect='*timed_hits*' \
//!       target/release/examples/backend_overhead redis-memoized 2000
//!   ```
//!
//!   with `redis-memoized`, `redis-raw`, `memcached-memoized` or `memcached-raw`; the
//!   `Collected` total divided by the count is instructions per hit, client side.
//! - **paired wall time**: `backend_overhead paired 20000` alternates a memoized hit and
//!   a raw read 20 000 times on each backend, timing each call, and prints the medians
//!   and quartiles of both and their ratio: drift hits both contenders alike.
//!
//! The servers are started on free loopback ports by `cachemacro-test-support`.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachemacro_runtime::{memoize, MemcachedStore, RedisStore};
use cachemacro_test_support::{nearby_shops, MemcachedServer, RedisServer};

const PREFIX: &str = "overhead";
const POSTCODE: &str = "EC1A";
const RADIUS: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(1);

type Value = Vec<String>;

static REDIS_URL: OnceLock<String> = OnceLock::new();
static MEMCACHED_ADDRESS: OnceLock<String> = OnceLock::new();

fn redis_store() -> RedisStore {
    RedisStore::builder(REDIS_URL.get().expect("server first").as_str())
        .prefix(PREFIX)
        .operation_timeout(TIMEOUT)
        .build()
        .expect("a valid URL")
}

fn memcached_pool() -> MemcachedStore {
    MemcachedStore::builder([MEMCACHED_ADDRESS.get().expect("server first")])
        .prefix(PREFIX)
        .operation_timeout(TIMEOUT)
        .build()
        .expect("at least one server")
}

#[memoize(name = "redis", store = redis_store())]
fn redis_nearby(postcode: &str, radius: u32) -> Value {
    nearby_shops(postcode, radius)
}

#[memoize(name = "memcached", store = memcached_pool())]
fn memcached_nearby(postcode: &str, radius: u32) -> Value {
    nearby_shops(postcode, radius)
}

fn decode(bytes: &[u8]) -> Value {
    rmp_serde::from_slice(bytes).expect("the stored value decodes")
}

fn key_bytes() -> Vec<u8> {
    rmp_serde::to_vec(&(POSTCODE, RADIUS)).expect("a key encodes")
}

/// One contender: a closure doing one hit and returning the value.
struct Contenders {
    memoized: Box<dyn FnMut() -> Value>,
    raw: Box<dyn FnMut() -> Value>,
    _server: Box<dyn std::any::Any>,
}

fn redis_contenders() -> Contenders {
    let server = RedisServer::start();
    REDIS_URL.set(server.url()).expect("once");
    let expected = redis_nearby(POSTCODE, RADIUS);
    let mut raw = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("a raw connection");
    raw.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut key = format!("{PREFIX}:redis:1:").into_bytes();
    key.extend(key_bytes());
    let read = move || -> Value {
        let bytes: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut raw).unwrap();
        decode(&bytes)
    };
    let mut raw_read = read;
    assert_eq!(raw_read(), expected, "the raw read finds the store's entry");
    Contenders {
        memoized: Box::new(|| redis_nearby(POSTCODE, RADIUS)),
        raw: Box::new(raw_read),
        _server: Box::new(server),
    }
}

fn memcached_contenders() -> Contenders {
    let server = MemcachedServer::start();
    MEMCACHED_ADDRESS.set(server.address()).expect("once");
    let expected = memcached_nearby(POSTCODE, RADIUS);
    // The raw client without the per-checkout `version` round trip, as the store has.
    let manager = memcache::ConnectionManager::new(
        format!(
            "memcache://{}?timeout={}&tcp_nodelay=true",
            server.address(),
            TIMEOUT.as_secs_f64()
        )
        .parse::<memcache::Url>()
        .expect("a URL"),
    );
    let pool = r2d2::Pool::builder()
        .max_size(1)
        .test_on_check_out(false)
        .build(manager)
        .expect("a pool");
    let raw = memcache::Client::with_pool(pool).expect("a raw client");
    let version: u64 = raw
        .get(&format!("{PREFIX}:memcached:version"))
        .unwrap()
        .expect("the store created its namespace version");
    let mut key = format!("{PREFIX}:memcached:1:v{version}:");
    for byte in key_bytes() {
        key.push_str(&format!("{byte:02x}"));
    }
    let raw_read = move || -> Value {
        let bytes: Vec<u8> = raw.get(&key).unwrap().expect("stored");
        decode(&bytes)
    };
    assert_eq!(raw_read(), expected, "the raw read finds the store's entry");
    Contenders {
        memoized: Box::new(|| memcached_nearby(POSTCODE, RADIUS)),
        raw: Box::new(raw_read),
        _server: Box::new(server),
    }
}

/// The loop callgrind counts (`--toggle-collect='*timed_hits*'`).
#[inline(never)]
fn timed_hits(hit: &mut dyn FnMut() -> Value, count: usize) {
    for _ in 0..count {
        black_box(hit());
    }
}

fn quartiles(mut times: Vec<Duration>) -> [Duration; 3] {
    times.sort_unstable();
    let at = |q: usize| times[times.len() * q / 4];
    [at(1), at(2), at(3)]
}

fn paired(name: &str, mut contenders: Contenders, count: usize) {
    let (mut memoized, mut raw) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for round in 0..count {
        // Alternate which goes first, so neither always follows the other's syscalls.
        let order: [&mut dyn FnMut() -> Value; 2] = if round % 2 == 0 {
            [&mut contenders.memoized, &mut contenders.raw]
        } else {
            [&mut contenders.raw, &mut contenders.memoized]
        };
        for (index, hit) in order.into_iter().enumerate() {
            let start = Instant::now();
            black_box(hit());
            let elapsed = start.elapsed();
            if (index == 0) == (round % 2 == 0) {
                memoized.push(elapsed);
            } else {
                raw.push(elapsed);
            }
        }
    }
    let [m1, m2, m3] = quartiles(memoized);
    let [r1, r2, r3] = quartiles(raw);
    println!(
        "{name:9} memoized p25/p50/p75 {:6.1} {:6.1} {:6.1} µs | raw {:6.1} {:6.1} {:6.1} µs | median ratio {:.3}",
        m1.as_secs_f64() * 1e6,
        m2.as_secs_f64() * 1e6,
        m3.as_secs_f64() * 1e6,
        r1.as_secs_f64() * 1e6,
        r2.as_secs_f64() * 1e6,
        r3.as_secs_f64() * 1e6,
        m2.as_secs_f64() / r2.as_secs_f64()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "paired".to_owned());
    let count: usize = args.next().map_or(20_000, |n| n.parse().expect("a count"));
    match mode.as_str() {
        "paired" => {
            paired("redis", redis_contenders(), count);
            paired("memcached", memcached_contenders(), count);
        }
        "redis-memoized" => timed_hits(&mut redis_contenders().memoized, count),
        "redis-raw" => timed_hits(&mut redis_contenders().raw, count),
        "memcached-memoized" => timed_hits(&mut memcached_contenders().memoized, count),
        "memcached-raw" => timed_hits(&mut memcached_contenders().raw, count),
        other => panic!("unknown mode {other}: paired, redis-memoized, redis-raw, memcached-memoized, memcached-raw"),
    }
}
