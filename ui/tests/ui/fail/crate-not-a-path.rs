use cachemacro_runtime::memoize;

#[memoize(crate = "not a path")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
