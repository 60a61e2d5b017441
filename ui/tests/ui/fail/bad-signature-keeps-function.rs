//! On a signature error the function is still emitted, so its callers compile and the
//! only error is the signature's.
use cachemacro_runtime::memoize;

#[memoize]
fn first_word(text: &str) -> &str {
    text.split(' ').next().unwrap_or("")
}

fn main() {
    assert_eq!(first_word("a b"), "a");
}
