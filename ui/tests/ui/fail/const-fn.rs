use cachemacro_runtime::memoize;

#[memoize]
const fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
