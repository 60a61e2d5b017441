use cachemacro_runtime::memoize;
use std::fmt::Write;

#[memoize(ignore(out))]
fn render(id: u32, mut out: impl Write) -> usize {
    write!(out, "rendered {id}").unwrap();
    id as usize * 100
}

fn main() {
    let mut first = String::new();
    assert_eq!(render(7, &mut first), 700);
    let mut second = String::new();
    assert_eq!(render(7, &mut second), 700);
    assert_eq!(first, "rendered 7");
    // A hit does not run the body, so nothing is written.
    assert_eq!(second, "");
    assert!(render::invalidate(7));
}
