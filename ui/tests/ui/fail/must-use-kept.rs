#![deny(unused_must_use)]
//! Attributes on the function are re-emitted: ignoring a `#[must_use]` result still fails.
use cachemacro_runtime::memoize;

#[must_use]
#[memoize]
fn total(id: u32) -> u32 {
    id
}

fn main() {
    total(1);
}
