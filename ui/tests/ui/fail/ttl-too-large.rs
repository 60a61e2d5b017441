use cachemacro_runtime::memoize;

#[memoize(ttl = 99999999999999999999)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
