use cachemacro_runtime::memoize;

#[memoize]
fn greeting(id: u32) -> String {
    if id == 0 {
        return "nobody";
    }
    format!("user {id}")
}

fn main() {}
