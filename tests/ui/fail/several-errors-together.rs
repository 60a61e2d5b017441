use cachemacro_runtime::memoize;

#[memoize(ttl = "15x", capacity = 0, colour = "red", ignore(nope))]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
