use cachemacro_runtime::memoize;

#[memoize(ignore())]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
