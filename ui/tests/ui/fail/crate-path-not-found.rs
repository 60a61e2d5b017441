use cachemacro_runtime::memoize;

#[memoize(crate = "cache_runtime")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
