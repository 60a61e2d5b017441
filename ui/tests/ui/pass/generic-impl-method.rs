use cachemacro_runtime::memoize;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Hash, PartialEq, Eq)]
struct Repeat<T> {
    item: T,
}

impl<T> Repeat<T>
where
    T: Clone + Hash + Eq + Send + Sync + 'static,
{
    #[memoize]
    fn times(&self, count: usize) -> Vec<T> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        vec![self.item.clone(); count]
    }

    #[memoize(ignore(self))]
    fn describe<U: ToString>(&self, unit: U) -> String
    where
        U: Clone + Hash + Eq + Send + Sync + 'static,
    {
        unit.to_string()
    }
}

fn main() {
    let bytes = Repeat { item: 1_u8 };
    let words = Repeat {
        item: "a".to_owned(),
    };
    assert_eq!(bytes.times(2), [1, 1]);
    assert_eq!(words.times(2), ["a", "a"]);
    assert_eq!(bytes.times(2), [1, 1]);
    assert_eq!(words.times(2), ["a", "a"]);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(Repeat::<u8>::times_stats().hits, 2);
    assert!(words.times_invalidate(2));

    assert_eq!(bytes.describe(5_u32), "5");
    assert_eq!(words.describe('x'), "x");
}
