use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Hash, PartialEq, Eq)]
struct Rectangle {
    width: u64,
}

impl Rectangle {
    #[memoize]
    fn area(&self, height: u64) -> u64 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        self.width * height
    }
}

fn main() {
    let narrow = Rectangle { width: 2 };
    let wide = Rectangle { width: 10 };
    assert_eq!(narrow.area(3), 6);
    assert_eq!(narrow.area(3), 6);
    // The receiver is part of the key: another instance computes its own value.
    assert_eq!(wide.area(3), 30);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(Rectangle::area_stats().hits, 1);
    assert!(narrow.area_invalidate(3));
    assert!(!narrow.area_invalidate(3));
    assert_eq!(narrow.area(3), 6);
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
    Rectangle::area_clear();
    assert_eq!(wide.area(3), 30);
    assert_eq!(CALLS.load(Ordering::SeqCst), 4);
}
