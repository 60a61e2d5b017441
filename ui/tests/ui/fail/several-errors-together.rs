use cachemacro_runtime::memoize;

#[memoize(
    ttl = "15x",
    capacity = 0,
    colour = "red",
    name = "",
    cache_err = "yes"
)]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
