use cachemacro_runtime::memoize;

#[memoize(cache_err = "yes")]
fn lookup(id: u32) -> Result<u32, String> {
    Ok(id)
}

fn main() {}
