use cachemacro_runtime::memoize;

#[memoize(weigher = |_: &(u32,), value: &u32| *value)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
