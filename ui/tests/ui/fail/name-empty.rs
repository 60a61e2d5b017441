use cachemacro_runtime::memoize;

#[memoize(name = "")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
