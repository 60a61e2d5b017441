//! Compile-time behaviour of `#[memoize]`: every diagnostic it emits, pinned with its
//! span and message, and the signatures it must accept.
//!
//! Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p cachemacro-ui --test ui`, then read the diff:
//! a diagnostic is part of the API.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
