extern crate cachemacro_runtime as renamed;

use renamed::memoize;

#[memoize(crate = "renamed", ttl = "1m")]
fn double(n: u64) -> u64 {
    n * 2
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Id(u64);

impl Id {
    #[memoize(crate = "::renamed")]
    async fn padded(&self) -> String {
        format!("{:04}", self.0)
    }
}

fn main() {
    assert_eq!(double(2), 4);
    assert_eq!(double(2), 4);
    assert_eq!(double::stats().hits, 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(Id(7).padded()), "0007");
}
