use cachemacro_runtime::memoize;

#[memoize(cache_err = true, cache_if = |result: &Result<u32, String>| result.is_ok())]
fn lookup(id: u32) -> Result<u32, String> {
    Ok(id)
}

fn main() {}
