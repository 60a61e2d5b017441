use cachemacro_runtime::cache_page;

#[cache_page]
struct Page {
    body: String,
}

fn main() {
    // The item is still emitted, so this line adds no error of its own.
    let _ = Page { body: String::new() };
}
