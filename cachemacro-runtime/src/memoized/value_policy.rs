//! How a function's return value maps to what is stored: [`ValuePolicy`], the closures
//! the generated code passes ([`PolicyFns`]), and stale-while-revalidate ([`StalePolicy`]
//! over [`Stamped`] values).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a function's return value `R` maps to the value `V` kept in the store.
///
/// For a function returning `Result<T, E>` the macro stores `T` and rebuilds `Ok(T)` on a
/// hit, so `Err` values are neither stored nor shared; `cache_if` adds a filter; `stale`
/// wraps the value in a [`Stamped`] through [`StalePolicy`].
pub trait ValuePolicy<R, V> {
    /// The value to store and share, or `None` if this result must not be cached.
    fn storable(&self, result: &R) -> Option<V>;
    /// Rebuilds the function's return value from a stored value.
    fn restore(&self, value: V) -> R;
    /// Whether a stored value may be served as it is. A stale one (past its ttl but
    /// within its stale window) is served to concurrent callers while one refreshes it.
    fn is_fresh(&self, value: &V) -> bool {
        let _ = value;
        true
    }
}

/// A [`ValuePolicy`] from two closures; what the generated code builds.
pub struct PolicyFns<ToStore, Restore>(pub ToStore, pub Restore);

impl<R, V, ToStore, Restore> ValuePolicy<R, V> for PolicyFns<ToStore, Restore>
where
    ToStore: Fn(&R) -> Option<V>,
    Restore: Fn(V) -> R,
{
    fn storable(&self, result: &R) -> Option<V> {
        (self.0)(result)
    }

    fn restore(&self, value: V) -> R {
        (self.1)(value)
    }
}

/// A stored value with the wall-clock time until which it is fresh; what
/// `#[memoize(stale = "..")]` stores. Wall-clock milliseconds, so that every process
/// sharing a remote store agrees.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stamped<V> {
    /// The cached value.
    pub value: V,
    /// Milliseconds since the Unix epoch until which `value` is fresh.
    pub fresh_until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Stale-while-revalidate around another policy: values are stamped with `ttl`; the
/// store keeps them for `ttl + stale`, and in between they are stale.
pub struct StalePolicy<P> {
    inner: P,
    ttl: Duration,
}

impl<P> StalePolicy<P> {
    /// Stamps what `inner` stores as fresh for `ttl`.
    pub fn new(inner: P, ttl: Duration) -> Self {
        StalePolicy { inner, ttl }
    }
}

impl<R, V, P: ValuePolicy<R, V>> ValuePolicy<R, Stamped<V>> for StalePolicy<P> {
    fn storable(&self, result: &R) -> Option<Stamped<V>> {
        self.inner.storable(result).map(|value| Stamped {
            value,
            fresh_until_ms: now_ms().saturating_add(self.ttl.as_millis() as u64),
        })
    }

    fn restore(&self, stamped: Stamped<V>) -> R {
        self.inner.restore(stamped.value)
    }

    fn is_fresh(&self, stamped: &Stamped<V>) -> bool {
        now_ms() < stamped.fresh_until_ms
    }
}
