use cachemacro_runtime::memoize;

#[memoize(ignore(self))]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
