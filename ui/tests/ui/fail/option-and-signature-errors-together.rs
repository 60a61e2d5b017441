use cachemacro_runtime::memoize;

#[memoize(ttl = "soon")]
const fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
