use cachemacro_runtime::{memoize, MemoryStore};

#[memoize(store = MemoryStore::builder().build(), tti = "5m")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
