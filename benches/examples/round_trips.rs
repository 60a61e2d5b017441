//! Round trips per memoized miss, counted by the servers themselves: Redis'
//! `INFO commandstats`, memcached's `stats`, and PostgreSQL's committed transactions (each
//! statement of the store is one). A hand-written cache needs two per miss (a read that
//! misses, then the write); the single-flight leader re-checks the store only when another
//! caller may have stored the key meanwhile, so a lone miss costs the same two.
//!
//! ```text
//! cargo run -p cachemacro-benches --release --features redis,memcached,postgres --example round_trips
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use cachemacro_runtime::{memoize, MemcachedStore, RedisStore, SqlStore};
use cachemacro_test_support::postgres::PostgresServer;
use cachemacro_test_support::{MemcachedServer, RedisServer};

const MISSES: u64 = 500;

static REDIS: OnceLock<RedisStore> = OnceLock::new();
static MEMCACHED: OnceLock<MemcachedStore> = OnceLock::new();
static POSTGRES: OnceLock<SqlStore> = OnceLock::new();

#[memoize(store = REDIS.get().unwrap().clone())]
fn on_redis(n: u64) -> u64 {
    n
}

#[memoize(store = MEMCACHED.get().unwrap().clone())]
fn on_memcached(n: u64) -> u64 {
    n
}

#[memoize(store = POSTGRES.get().unwrap().clone())]
async fn on_postgres(n: u64) -> u64 {
    n
}

/// Redis' count of each command so far.
fn redis_commands(server: &RedisServer) -> HashMap<String, u64> {
    server
        .cli(&["info", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// memcached's `cmd_get` + `cmd_set` + `cmd_touch` + ... : every command it counted.
fn memcached_commands(server: &MemcachedServer) -> u64 {
    let mut connection = TcpStream::connect(server.address()).unwrap();
    connection.write_all(b"stats\r\n").unwrap();
    let mut total = 0;
    for line in BufReader::new(connection).lines() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        let mut fields = line.split_whitespace().skip(1);
        if let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if name.starts_with("cmd_") {
                total += value.parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

fn main() {
    println!(
        "| store | misses | round trips counted at the server | per miss | hand-written cache |"
    );
    println!("|---|---|---|---|---|");

    let redis = RedisServer::start();
    REDIS.get_or_init(|| RedisStore::builder(redis.url()).build().unwrap());
    on_redis(u64::MAX); // connects, so that no handshake counts
    let before = redis_commands(&redis);
    (0..MISSES).for_each(|n| assert_eq!(on_redis(n), n));
    let after = redis_commands(&redis);
    let counted: u64 = after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| calls - before.get(name).copied().unwrap_or(0))
        .sum();
    println!(
        "| Redis | {MISSES} | {counted} | {:.2} | 2 (GET, SET) |",
        counted as f64 / MISSES as f64
    );

    let memcached = MemcachedServer::start();
    MEMCACHED.get_or_init(|| {
        MemcachedStore::builder([memcached.address()])
            .build()
            .unwrap()
    });
    on_memcached(u64::MAX);
    let before = memcached_commands(&memcached);
    (0..MISSES).for_each(|n| assert_eq!(on_memcached(n), n));
    let counted = memcached_commands(&memcached) - before;
    println!(
        "| memcached | {MISSES} | {counted} | {:.2} | 2 (get, set) |",
        counted as f64 / MISSES as f64
    );

    let postgres = PostgresServer::start();
    POSTGRES.get_or_init(|| {
        SqlStore::builder(postgres.url())
            .create_table(true)
            .operation_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        on_postgres(u64::MAX).await;
        assert_eq!(on_postgres::stats().errors, 0, "the table is there");
        let commits = || {
            // A busy backend flushes its statistics at most once a second, an idle one
            // within ten seconds.
            std::thread::sleep(Duration::from_secs(11));
            let output = std::process::Command::new("psql")
                .args([
                    &postgres.url(),
                    "-At",
                    "-c",
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse::<u64>()
                .unwrap()
        };
        let before = commits();
        for n in 0..MISSES {
            assert_eq!(on_postgres(n).await, n);
        }
        // The reading query itself commits once.
        let counted = commits() - before - 1;
        println!(
            "| PostgreSQL | {MISSES} | {counted} | {:.2} | 2 (SELECT, INSERT) |",
            counted as f64 / MISSES as f64
        );
    });
}
