use cachemacro_runtime::memoize;

#[memoize]
fn first_word(text: &str) -> &str {
    text.split(' ').next().unwrap_or("")
}

fn main() {}
