use cachemacro_runtime::memoize;

#[memoize(key = id, ignore(db))]
fn lookup(db: &str, id: u32) -> u32 {
    let _ = db;
    id
}

fn main() {}
