use cachemacro_runtime::memoize;

#[memoize(key)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
