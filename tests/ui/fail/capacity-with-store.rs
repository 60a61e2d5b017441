use cachemacro_runtime::{memoize, MemoryStore};

#[memoize(capacity = 10, store = MemoryStore::builder().build())]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
