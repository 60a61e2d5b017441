use cachemacro_runtime::cache_page;

#[cache_page(query = false, ignore_query = ["utm_*"])]
async fn first() -> &'static str {
    "first"
}

#[cache_page(ignore_query = ["*"], query = false)]
async fn second() -> &'static str {
    "second"
}

fn main() {}
