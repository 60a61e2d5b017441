//! The embedded in-memory store: sharded hash tables of dense entry slabs, S3-FIFO
//! eviction and per-entry expiry.
//!
//! # Design
//!
//! - The store is split into shards (a power of two, 4 per CPU, fewer for small
//!   capacities so that each shard holds at least `MIN_SHARD_CAPACITY` entries). A shard
//!   is one `RwLock` around a dense `Vec` of entries (key, value, links, frequency) and a
//!   `hashbrown::HashTable<u32>` of indices into it. Keeping keys and values out of the
//!   hash table is what makes the store small: at 1M entries the tables sit at a load
//!   factor of 0.48, so every byte of a bucket costs about 2.1 bytes per entry, and a
//!   bucket here is a 4-byte index instead of the whole entry.
//! - A read takes the shard's *read* lock, finds the index with the key's hash and an
//!   equality test (an owned `&K` or a borrowed [`KeyRef`](crate::KeyRef), so a hit never builds a key),
//!   and touches only atomics: the entry's 2-bit S3-FIFO frequency, with a time to idle
//!   its last-read stamp, and one slot of the shard's read buffer. Readers never wait for
//!   each other.
//! - Eviction follows S3-FIFO (Yang et al., "FIFO queues are all you need for cache
//!   eviction", SOSP '23), with `quick_cache`'s refinements. Once the shard is full, new
//!   keys enter a small FIFO; eviction takes from the small queue while main is within
//!   its share, promoting to main an entry that was read meanwhile and otherwise evicting
//!   it. Main is a FIFO with second chances: an entry read since it was last examined
//!   loses one frequency level and goes back to the tail. One-time keys (scans)
//!   therefore never displace the main queue.
//! - Evicted keys leave their hash in a ghost table, tagged with the queue they left. A
//!   new key found there is a key that came back, and TinyLFU decides whether it enters
//!   main directly (Einziger et al., ACM ToS 2017): a count-min sketch of 4-bit counters
//!   (one 8-byte word per entry, halved every 10 increments per entry), fed by every miss
//!   and every hit, must rate it above main's victim. Otherwise it goes on probation like
//!   any new key, so on a loop larger than the cache, where every key ties, main keeps
//!   its keys. The victim is the entry main's clock would really evict: the clock is
//!   advanced past read entries, giving them their second chances, before the
//!   comparison.
//! - A sample of the returning keys the sketch refuses enters main anyway, on trial: the
//!   sketch forgets old popularity only every few turns of the cache, so where the cache
//!   holds most of a workload's reuse window it keeps refusing keys that come back for
//!   the favourites of long ago. A trial key that main's clock then finds read has paid;
//!   the victim it was weighed against, tagged in the ghost when evicted, that comes back
//!   has cost a part of a miss (a third: it was main's next eviction anyway). Every 64
//!   outcomes the share on trial doubles if trials paid more than they cost and halves
//!   if they cost more, between 1 in 64 and every refused key. On a loop larger than the
//!   cache, trials cost as much as they pay, so they stay rare and main keeps its keys.
//! - A new key the ghost does not remember skips probation if the sketch rates it more
//!   than two counts above main's victim, as W-TinyLFU admits keys leaving its window,
//!   but only while fewer than half of the shard's recent misses are ghost returns: then
//!   such a key comes back at reuse distances longer than the ghost's memory, which
//!   probation cannot tell from a one-hit wonder. Where most misses are ghost returns (a
//!   loop a little larger than the cache) a key the ghost lost is a collision in it, and
//!   the returning keys' own test already judges the workload. Each such admission
//!   moves the boundary toward main by half an entry, and a ledger of its own, like the
//!   trials', weighs the admitted keys' hits against the displaced victims' returns.
//! - A loop a little larger than the cache needs two more rules, both asked under the
//!   shard's write lock from what its misses and evictions already see (`probation`
//!   counts the small queue's departures since one was read there). A returning key
//!   ties with main's victim on such a loop, yet its own miss has just counted it, one
//!   count ahead of a victim whose turn is still to come: admitted, it displaces the key
//!   due next, which comes back, displaces the next one, a miss each. So while the shard
//!   looks like a loop (its small queue caught no second use over its last 96 departures,
//!   and most misses are keys the ghost remembers) a candidate only one count ahead is
//!   admitted at the share its own ledger sets. And the small queue does not grow while
//!   it has caught nothing over its last 2 048 departures: a key back from its ghost then
//!   says nothing about its length.
//! - Hits reach the sketch without a store to it on the hit path: a hit that raises the
//!   entry's frequency also writes the key's hash into a small direct-mapped read buffer
//!   of its shard (16 slots, one cache line; no write if the slot already holds that
//!   hash), and the next write to the shard drains the buffer into the sketch under its
//!   write lock, as Caffeine drains its read buffers. A hot key, whose frequency is
//!   saturated, writes nothing: its second chances keep it anyway. The buffer is lossy:
//!   reads of more distinct keys than slots between two writes overwrite each other,
//!   which samples them, and every write drains at most 16 slots.
//! - An admitted key also moves the boundary between the queues, as ARC moves its target
//!   (Megiddo and Modha, FAST '03): back from the small queue, the small queue was too
//!   short to see its second use and grows; back from main, main grows. The step is one
//!   entry times the ratio of the two ghosts' populations, and the small queue's share
//!   stays between 1% and 90% of the shard. Recency-heavy workloads (a database's block
//!   trace) settle on a long small queue, close to LRU, frequency-heavy ones on a short one.
//!   Measured against LRU, moka, quick_cache and Bélády in `examples/hit_ratio.rs` and, on
//!   the ARC paper's traces, `examples/trace_replay.rs` (see BENCHMARKS.md, "Hit ratio").
//! - Each shard is its own S3-FIFO cache with `capacity / shards` entries, like
//!   `quick_cache`, with its own sketch, ghost and boundary, so a shard that gets more
//!   keys than another adapts to its own traffic: the policy state lives under the shard's write lock, so there is no
//!   global policy lock, writers to different shards never contend, and a burst of
//!   inserts never blocks readers of other shards. Every structural change of a shard
//!   happens under its write lock, so no shard, and hence not the store, ever holds more
//!   than its capacity, not even transiently under concurrency.
//! - No code of the user's runs while a shard is inconsistent: keys are hashed before the
//!   lock is taken, compared (`Eq`) before anything is changed, and every removed key and
//!   value is handed to the removal listener and dropped after the lock is released.
//!   Eviction compares indices and stored hashes only.
//! - A hit is a shard read lock, one probe, at most one relaxed byte store (none once the
//!   frequency saturates), then at most one relaxed 4-byte store into the read buffer
//!   and the value's clone: no allocation, no shared counter.
//! - The hasher is `foldhash::fast::RandomState`: several times faster than SipHash, and
//!   seeded randomly per process (and per store), so an attacker who does not know the
//!   seed cannot aim keys at one bucket. That is resistance enough for a bounded cache,
//!   whose worst case is a slow shard, not unbounded memory. The 64-bit hash is folded to
//!   32 bits and stored in the entry (4 bytes instead of 8); tables and ghost are indexed
//!   by a multiplicative spread of those 32 bits, which can be recomputed at any time.
//! - Expiry is lazy and needs no background thread: a read reports an expired entry as a
//!   miss, and every insert purges expired entries among the few oldest of each queue, so
//!   the work per write stays bounded. Expiry stamps live in a side vector that a shard
//!   only allocates once one of its entries has a time to live (or the store a time to
//!   idle), so a store without expiry pays neither the memory nor the clock reads.
//! - Time is kept as `u64` nanoseconds since an [`Instant`](std::time::Instant) taken at construction.
//! - A weighted store (`max_bytes` or a weigher) bounds each shard by the total weight
//!   of its entries as well as by their number. Weights are computed before the lock is
//!   taken (the weigher is user code) and kept in a side vector like the expiry stamps,
//!   so a store without weights pays nothing per entry; each queue keeps the sum of its
//!   entries' weights, and the small queue gets 3% of the shard's weight as it gets 3%
//!   of its entries.
//!
//! # Layout
//!
//! [`slab`] holds one shard's dense entries and the FIFOs linked through them; [`shard`]
//! is one S3-FIFO cache over a slab, with its hash table and admission tests; [`ghost`]
//! remembers the evicted keys' hashes and how many misses it recognises;
//! [`sketch`] is the frequency sketch the admission test reads; [`reads`] is the buffer
//! through which hits reach it; [`trials`] keeps the ledgers that set how many of the
//! candidates of each admission are let in; [`probation`] says how long the small queue
//! has gone without a hit; [`sharded`] is
//! [`MemoryStore`]: the locked shards, the hit path and the [`Store`](crate::Store)
//! implementation; [`builder`] holds the settings and splits the bounds between shards;
//! [`removal`] says why an entry left and batches the listener's reports; [`weigher`]
//! weighs entries; [`api`] adds the conditional writes of [`CacheApi`](crate::CacheApi).

mod api;
mod builder;
mod ghost;
mod probation;
mod reads;
mod removal;
mod shard;
mod sharded;
mod sketch;
mod slab;
mod trials;
mod weigher;

#[cfg(test)]
mod tests;

pub use builder::MemoryStoreBuilder;
pub use removal::RemovalCause;
pub use sharded::MemoryStore;
