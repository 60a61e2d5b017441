use cachemacro_runtime::memoize;

#[memoize(store = cachemacro_runtime::MemoryStore::builder().build(), tti = "5m")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
