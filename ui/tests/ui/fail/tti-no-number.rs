use cachemacro_runtime::memoize;

#[memoize(tti = "abc")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
