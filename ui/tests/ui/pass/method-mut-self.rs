use cachemacro_runtime::memoize;

struct Tally {
    computed: u32,
}

impl Tally {
    #[memoize(ignore(self))]
    fn square(&mut self, n: u64) -> u64 {
        self.computed += 1;
        n * n
    }
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Buffer {
    bytes: Vec<u8>,
}

impl Buffer {
    /// The receiver is cloned into the key before the body may change it.
    #[memoize]
    fn push_len(&mut self, byte: u8) -> usize {
        self.bytes.push(byte);
        self.bytes.len()
    }
}

fn main() {
    let mut tally = Tally { computed: 0 };
    assert_eq!(tally.square(12), 144);
    assert_eq!(tally.square(12), 144);
    assert_eq!(tally.computed, 1);

    let mut buffer = Buffer { bytes: Vec::new() };
    assert_eq!(buffer.push_len(7), 1);
    assert_eq!(buffer.push_len(7), 2);
    let mut fresh = Buffer { bytes: Vec::new() };
    // Same receiver value and argument as the first call: served from the cache.
    assert_eq!(fresh.push_len(7), 1);
    assert!(fresh.bytes.is_empty());
}
