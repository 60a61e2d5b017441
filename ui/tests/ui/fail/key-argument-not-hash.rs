use cachemacro_runtime::memoize;

#[derive(Clone, PartialEq)]
struct Point {
    x: f64,
    y: f64,
}

#[memoize]
fn norm(point: Point) -> u64 {
    (point.x * point.x + point.y * point.y).sqrt() as u64
}

fn main() {}
