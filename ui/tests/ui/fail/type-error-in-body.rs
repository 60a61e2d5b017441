use cachemacro_runtime::memoize;

#[memoize]
fn greeting(name: &str) -> String {
    let _ = name;
    "hello"
}

fn main() {}
