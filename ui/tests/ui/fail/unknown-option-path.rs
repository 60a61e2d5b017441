use cachemacro_runtime::memoize;

#[memoize(store::memory = 1)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
