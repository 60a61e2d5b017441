//! On an attribute error the function is still emitted, so its callers compile and the
//! only error is the attribute's.
use cachemacro_runtime::memoize;

#[memoize(ttl = "15x")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {
    assert_eq!(lookup(1), 1);
}
