use cachemacro_runtime::memoize;

#[memoize(ttl = "0s")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
