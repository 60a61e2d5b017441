use cachemacro_runtime::memoize;

#[memoize(ttl = "1m", capacity = 10, ttl = "5m")]
fn lookup(id: u32) -> u32 {
    id
}

fn main() {}
