use cachemacro_runtime::memoize;

struct Client {
    base: String,
}

impl Client {
    #[memoize]
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

fn main() {}
