use cachemacro_runtime::cache_page;

#[cache_page]
fn not_async() -> &'static str {
    "sync"
}

#[cache_page]
async fn generic<T: Default>() -> &'static str {
    "generic"
}

struct Shop;

impl Shop {
    #[cache_page]
    async fn method(&self) -> &'static str {
        "method"
    }
}

fn main() {}
