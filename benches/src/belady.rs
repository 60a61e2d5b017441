//! Bélády's MIN: the hit ratio no online policy can beat on a given trace.

use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};

/// Hits of Bélády's MIN with bypass on `trace` with room for `capacity` keys: on a miss
/// with the cache full, the key whose next use is farthest, the incoming one included, is
/// the one left out. An upper bound for every online policy, admission-controlled ones
/// (moka, quick_cache) included. Cold misses count as misses, as for every other policy.
///
/// ```
/// use cachemacro_benches::belady::belady_hits;
///
/// // With room for one key, only the repeats of the key held can hit.
/// assert_eq!(belady_hits(&[1, 1, 2, 1], 1), 2);
/// assert_eq!(belady_hits(&[1, 2, 1, 2], 2), 2);
/// ```
pub fn belady_hits(trace: &[u64], capacity: usize) -> usize {
    const NEVER: usize = usize::MAX;
    if capacity == 0 {
        return 0;
    }
    let mut next_use = vec![NEVER; trace.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, &key) in trace.iter().enumerate().rev() {
        if let Some(later) = seen.insert(key, i) {
            next_use[i] = later;
        }
    }
    drop(seen);
    // Cached key -> its next use; the heap holds (next use, key) with stale pairs skipped.
    let mut cached: HashMap<u64, usize> = HashMap::with_capacity(capacity);
    let mut farthest: BinaryHeap<(usize, u64)> = BinaryHeap::with_capacity(capacity * 2);
    let mut hits = 0usize;
    for (i, &key) in trace.iter().enumerate() {
        let next = next_use[i];
        match cached.entry(key) {
            Entry::Occupied(mut hit) => {
                hits += 1;
                hit.insert(next);
                farthest.push((next, key));
                continue;
            }
            Entry::Vacant(_) if next == NEVER => continue,
            Entry::Vacant(_) => {}
        }
        if cached.len() >= capacity {
            let victim = loop {
                let (victim_next, victim) = farthest.pop().expect("a full cache has entries");
                if cached.get(&victim) == Some(&victim_next) {
                    break (victim_next, victim);
                }
            };
            if victim.0 <= next {
                // Every cached key is needed sooner than the incoming one: bypass it.
                farthest.push(victim);
                continue;
            }
            cached.remove(&victim.1);
        }
        cached.insert(key, next);
        farthest.push((next, key));
        // Keep the lazily deleted pairs bounded.
        if farthest.len() > capacity * 8 {
            farthest = cached.iter().map(|(&k, &n)| (n, k)).collect();
        }
    }
    hits
}
