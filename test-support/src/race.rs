//! Threads that really race: released together by a barrier, so that what they do
//! overlaps instead of running one after another as threads that start one by one would.

use std::sync::Barrier;
use std::thread;

/// Runs `run(i)` for `i` in `0..threads`, each on its own thread, all released at once;
/// returns their results in order of `i` once every thread is done. A panic in one of
/// them is raised again here. The threads borrow from the caller (scoped threads), so a
/// store shared by the racers needs no `Arc`.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let hits = AtomicU64::new(0);
/// let seen = cachemacro_test_support::race(8, |_| hits.fetch_add(1, Ordering::SeqCst));
/// assert_eq!(hits.load(Ordering::SeqCst), 8);
/// assert_eq!(seen.len(), 8);
/// ```
pub fn race<T: Send>(threads: usize, run: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(threads);
    let (barrier, run) = (&barrier, &run);
    thread::scope(|scope| {
        let racers: Vec<_> = (0..threads)
            .map(|i| {
                scope.spawn(move || {
                    barrier.wait();
                    run(i)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| {
                racer
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
