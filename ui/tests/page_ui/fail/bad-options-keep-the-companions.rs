//! On an option or signature error the companions are still emitted, as stand-ins, so
//! that the code calling them compiles and the only errors are the attribute's.
use cachemacro_runtime::cache_page;

#[cache_page(ttl = "15x")]
async fn book() -> &'static str {
    "book"
}

#[cache_page]
fn not_async() -> &'static str {
    "sync"
}

fn main() {
    let _: bool = book::invalidate("/books/1");
    book::clear();
    let _: u64 = book::stats().hits;
    not_async::clear();
    let _ = async {
        let _: bool = book::invalidate_async("/books/1").await;
        book::clear_async().await;
        not_async::clear_async().await;
    };
}
