use cachemacro_runtime::memoize;

struct Connection {
    url: String,
}

#[memoize]
fn ping(connection: Connection, attempt: u32) -> String {
    format!("{} #{attempt}", connection.url)
}

fn main() {}
