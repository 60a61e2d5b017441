use cachemacro_runtime::memoize;

#[memoize]
fn digits(n: u32) -> impl Iterator<Item = u32> {
    n.to_string()
        .into_bytes()
        .into_iter()
        .map(|b| u32::from(b - b'0'))
}

fn main() {}
