use cachemacro_runtime::memoize;

#[derive(Clone, Copy)]
struct Celsius(f64);

impl Celsius {
    #[memoize]
    fn to_fahrenheit(self) -> u64 {
        (self.0 * 9.0 / 5.0 + 32.0) as u64
    }
}

fn main() {}
