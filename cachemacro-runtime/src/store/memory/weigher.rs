//! How a weighted store weighs an entry against its `max_bytes`.

use std::sync::Arc;

/// A weigher given to `MemoryStoreBuilder::weigher`.
pub(super) type WeighFn<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// How a weighted store weighs an entry.
pub(super) enum Weigher<K, V> {
    /// `size_of::<K>() + size_of::<V>()`, computed once: the default with `max_bytes`.
    /// A variant rather than a closure, which would require `K: 'static` and `V: 'static`.
    Shallow(u32),
    Custom(WeighFn<K, V>),
}

impl<K, V> Weigher<K, V> {
    pub(super) fn weigh(&self, key: &K, value: &V) -> u32 {
        match self {
            Weigher::Shallow(weight) => *weight,
            Weigher::Custom(weigher) => weigher(key, value),
        }
    }
}
