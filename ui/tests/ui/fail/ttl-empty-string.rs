use cachemacro_runtime::memoize;

#[memoize(ttl = "")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
