use cachemacro_runtime::cache_page;

#[cache_page(vary = ["Accept Language", 3])]
async fn first() -> &'static str {
    "first"
}

#[cache_page(vary = "Accept-Language")]
async fn second() -> &'static str {
    "second"
}

#[cache_page(ttl = "1m", ttl = "2m")]
async fn third() -> &'static str {
    "third"
}

fn main() {}
