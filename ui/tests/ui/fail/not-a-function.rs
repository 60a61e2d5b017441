use cachemacro_runtime::memoize;

#[memoize]
struct Lookup {
    id: u32,
}

fn main() {
    let _ = Lookup { id: 1 };
}
