use cachemacro_runtime::memoize;

#[memoize(stale = "5m")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
