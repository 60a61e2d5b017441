use cachemacro_runtime::memoize;

#[memoize(name = geo::nearby)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
