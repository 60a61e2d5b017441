use cachemacro_runtime::memoize;

#[memoize(ttl = "15x")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
