use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Neither `Clone` nor `Hash`: it can only be left out of the key.
struct Pricing {
    vat_percent: u64,
}

impl Pricing {
    #[memoize(ignore(self))]
    fn gross(&self, net: u64) -> u64 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        net + net * self.vat_percent / 100
    }
}

fn main() {
    let first = Pricing { vat_percent: 20 };
    let second = Pricing { vat_percent: 5 };
    assert_eq!(first.gross(100), 120);
    // `self` is ignored: every instance shares one cache, so this is a hit.
    assert_eq!(second.gross(100), 120);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert!(Pricing::gross_invalidate(100));
    assert_eq!(second.gross(100), 105);
    assert_eq!(Pricing::gross_stats().hits, 1);
}
