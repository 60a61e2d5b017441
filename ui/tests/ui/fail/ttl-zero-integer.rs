use cachemacro_runtime::memoize;

#[memoize(ttl = 0)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
