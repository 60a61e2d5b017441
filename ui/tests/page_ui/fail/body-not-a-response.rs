use cachemacro_runtime::cache_page;

struct Page;

#[cache_page]
async fn book() -> Page {
    Page
}

fn main() {}
