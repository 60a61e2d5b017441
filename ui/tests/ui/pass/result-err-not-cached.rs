use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
enum FetchError {
    Timeout,
}

#[memoize]
fn fetch(id: u32) -> Result<String, FetchError> {
    let attempt = CALLS.fetch_add(1, Ordering::SeqCst);
    if attempt == 0 {
        return Err(FetchError::Timeout);
    }
    Ok(format!("item {id}"))
}

#[memoize]
fn parse(text: &str) -> std::io::Result<u32> {
    text.parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a number"))
}

fn main() {
    assert_eq!(fetch(1), Err(FetchError::Timeout));
    // The error was not stored, so the next call runs again and succeeds.
    assert_eq!(fetch(1), Ok("item 1".to_owned()));
    assert_eq!(fetch(1), Ok("item 1".to_owned()));
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(fetch::stats().hits, 1);

    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    assert_eq!(parse("42").unwrap(), 42);
    assert_eq!(parse("42").unwrap(), 42);
    assert_eq!(parse::stats().hits, 1);
}
