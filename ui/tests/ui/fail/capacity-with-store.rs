use cachemacro_runtime::memoize;

#[memoize(capacity = 10, store = cachemacro_runtime::MemoryStore::builder().build())]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
