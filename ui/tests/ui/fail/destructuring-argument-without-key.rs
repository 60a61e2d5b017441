use cachemacro_runtime::memoize;

#[memoize]
fn distance((x, y): (i64, i64)) -> i64 {
    x.abs() + y.abs()
}

fn main() {}
