use cachemacro_runtime::memoize;
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(cache_err = true)]
fn resolve(host: &str) -> Result<u32, String> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    match host {
        "localhost" => Ok(1),
        _ => Err(format!("unknown host {host}")),
    }
}

fn main() {
    assert_eq!(resolve("nowhere"), Err("unknown host nowhere".to_owned()));
    // The error was stored: the body does not run again.
    assert_eq!(resolve("nowhere"), Err("unknown host nowhere".to_owned()));
    assert_eq!(resolve("localhost"), Ok(1));
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(resolve::stats().hits, 1);
}
