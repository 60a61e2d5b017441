use cachemacro_runtime::memoize;

#[memoize]
async fn greeting(id: u32) -> String {
    id
}

fn main() {}
