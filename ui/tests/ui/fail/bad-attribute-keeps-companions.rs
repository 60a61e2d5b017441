//! On an attribute or signature error the companions are still emitted, as stand-ins, so
//! that the code calling them compiles and the only errors are the attribute's.
use cachemacro_runtime::memoize;

struct Db;

#[memoize(ttl = "15x", ignore(db))]
fn lookup(db: &Db, id: u32) -> u32 {
    let _ = db;
    id
}

#[memoize]
fn first_word(text: &str) -> &str {
    text.split(' ').next().unwrap_or("")
}

struct Catalog;

impl Catalog {
    #[memoize(capacity = 0)]
    fn size(&self, genre: &str) -> usize {
        genre.len()
    }
}

fn main() {
    assert_eq!(lookup(&Db, 1), 1);
    let _: bool = lookup::invalidate(1);
    lookup::clear();
    let _: u64 = lookup::stats().hits;
    let _: bool = first_word::invalidate("a b");
    let catalog = Catalog;
    assert_eq!(catalog.size("poetry"), 6);
    let _: bool = catalog.size_invalidate("poetry");
    Catalog::size_clear();
    let _: u64 = Catalog::size_stats().misses;
    let _ = async {
        let _: bool = lookup::invalidate_async(1).await;
        lookup::clear_async().await;
        let _: bool = first_word::invalidate_async("a b").await;
        let _: bool = catalog.size_invalidate_async("poetry").await;
        Catalog::size_clear_async().await;
    };
}
