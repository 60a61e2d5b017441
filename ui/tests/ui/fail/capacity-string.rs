use cachemacro_runtime::memoize;

#[memoize(capacity = "100")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
