//! Blocking callers of code written once as `async`: the same future the async callers
//! await, run to the end in a single poll.
//!
//! A blocking caller's steps (store calls, waits, the computation, a Redis command on a
//! blocking connection) all block the thread instead of yielding, so every `.await` is
//! complete by the time it is reached and the first poll returns the output. That keeps
//! one written algorithm for both kinds of caller instead of a sync copy that drifts from
//! the async one: the memoize flight and the Redis commands both run this way.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};

/// Nothing ever waits to be woken: a blocking future never returns `Pending`.
struct NeverWoken;

impl Wake for NeverWoken {
    fn wake(self: Arc<Self>) {}
}

static NEVER_WOKEN: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(NeverWoken)));

/// Runs `future`, whose every `.await` completes without yielding, to its output.
///
/// # Panics
///
/// If the future yields, which a future built from blocking calls never does.
pub(crate) fn complete_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(&NEVER_WOKEN);
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a future of blocking calls yielded to an executor"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_steps_complete_in_one_poll() {
        let answer = complete_now(async {
            let half = std::future::ready(21).await;
            half * 2
        });
        assert_eq!(answer, 42);
    }

    #[test]
    #[should_panic(expected = "yielded")]
    fn a_yielding_future_is_a_bug_not_a_hang() {
        complete_now(std::future::pending::<()>());
    }
}
