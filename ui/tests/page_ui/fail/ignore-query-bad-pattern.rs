use cachemacro_runtime::cache_page;

#[cache_page(ignore_query = ["utm_*", "", "utm source", "a=b"])]
async fn first() -> &'static str {
    "first"
}

#[cache_page(ignore_query = ["fbclid", "*"])]
async fn second() -> &'static str {
    "second"
}

#[cache_page(ignore_query = [])]
async fn third() -> &'static str {
    "third"
}

fn main() {}
