use cachemacro_runtime::memoize;

struct Catalog;

#[memoize]
impl Catalog {
    fn size(&self) -> usize {
        0
    }
}

fn main() {
    let _ = Catalog.size();
}
