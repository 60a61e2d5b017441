use cachemacro_runtime::memoize;
use std::any::type_name;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn describe<T: Clone + Hash + Eq + Send + Sync + 'static + std::fmt::Debug>(value: T) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{value:?}: {}", type_name::<T>())
}

#[memoize]
fn first_or_default<T>(items: &[T]) -> T
where
    T: Clone + Hash + Eq + Send + Sync + Default + 'static,
{
    items.first().cloned().unwrap_or_default()
}

/// `T` is in neither the key nor the value: the instantiation itself must be keyed.
#[memoize]
fn bytes_for<T>(count: usize) -> usize {
    count * std::mem::size_of::<T>()
}

/// So must a const parameter.
#[memoize]
fn scaled<const FACTOR: u32>(value: u32) -> u32 {
    value * FACTOR
}

fn main() {
    // Equal values of different types are different instantiations with their own cache.
    assert_eq!(describe(1_u32), "1: u32");
    assert_eq!(describe(1_u64), "1: u64");
    assert_eq!(describe(1_u32), "1: u32");
    assert_eq!(describe(1_u64), "1: u64");
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(describe::stats().hits, 2);
    assert!(describe::invalidate(1_u64));
    assert!(!describe::invalidate(1_u64));
    assert!(describe::invalidate(1_u32));

    assert_eq!(first_or_default::<u8>(&[]), 0);
    assert_eq!(first_or_default(&["a".to_owned()]), "a");
    assert_eq!(first_or_default::<String>(&[]), "");

    assert_eq!(bytes_for::<u8>(4), 4);
    assert_eq!(bytes_for::<u64>(4), 32);
    assert_eq!(bytes_for::<u8>(4), 4);
    assert_eq!(bytes_for::stats().hits, 1);
    assert!(bytes_for::invalidate::<u64>(4));
    assert!(!bytes_for::invalidate::<u64>(4));

    assert_eq!(scaled::<2>(3), 6);
    assert_eq!(scaled::<5>(3), 15);
    assert!(scaled::invalidate::<5>(3));
    assert!(!scaled::invalidate::<5>(3));
    assert!(scaled::invalidate::<2>(3));
}
