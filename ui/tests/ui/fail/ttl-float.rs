use cachemacro_runtime::memoize;

#[memoize(ttl = 1.5)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
