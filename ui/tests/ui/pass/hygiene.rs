#![deny(warnings, unused_qualifications)]
//! The expansion names nothing through local names: a crate-root module called `core`
//! and local items named like prelude items change nothing, and it compiles warning-free.

use cachemacro_runtime::memoize;

#[allow(dead_code)]
mod core {}

#[allow(dead_code)]
mod std {}

#[allow(dead_code)]
struct Clone;

#[allow(dead_code)]
struct Duration;

#[allow(dead_code, non_snake_case)]
fn Some() {}

#[memoize(ttl = "1m", capacity = 8)]
fn double(n: u64) -> u64 {
    n * 2
}

#[memoize]
fn checked(n: u64) -> ::core::result::Result<u64, ::std::string::String> {
    n.checked_mul(2)
        .ok_or_else(|| ::std::string::String::from("overflow"))
}

#[derive(::core::clone::Clone, Hash, PartialEq, Eq)]
struct Point(i32);

impl Point {
    #[memoize]
    fn negated(&self) -> i32 {
        -self.0
    }
}

#[memoize]
async fn later(n: u64) -> u64 {
    n + 1
}

fn main() {
    assert_eq!(double(2), 4);
    assert_eq!(double(2), 4);
    assert_eq!(double::stats().hits, 1);
    assert_eq!(checked(2), Ok(4));
    assert_eq!(Point(3).negated(), -3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(later(1)), 2);
}
