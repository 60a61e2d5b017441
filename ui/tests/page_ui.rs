//! Compile-time behaviour of `#[cache_page]`: every diagnostic it emits, pinned with its
//! span and message, and the handlers it must accept.
//!
//! Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p cachemacro-ui --test page_ui`, then read the diff:
//! a diagnostic is part of the API.

#[test]
fn page_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/page_ui/fail/*.rs");
    t.pass("tests/page_ui/pass/*.rs");
}
