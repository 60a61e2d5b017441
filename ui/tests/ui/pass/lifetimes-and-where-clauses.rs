use cachemacro_runtime::memoize;
use std::fmt::Display;
use std::hash::Hash;

#[memoize]
fn join<'a, 'b: 'a>(left: &'a str, right: &'b str) -> String {
    format!("{left}{right}")
}

#[memoize]
fn label<T>(value: T, unit: &str) -> String
where
    T: Display + Clone + Hash + Eq + Send + Sync + 'static,
{
    format!("{value} {unit}")
}

struct Parser<'src> {
    source: &'src str,
}

impl<'src> Parser<'src> {
    #[memoize(ignore(self))]
    fn word_count<'q>(&self, query: &'q str) -> usize
    where
        'src: 'q,
    {
        self.source.matches(query).count()
    }
}

fn main() {
    let owned = String::from("ab");
    assert_eq!(join(&owned[..1], "c"), "ac");
    assert_eq!(join("a", "c"), "ac");
    assert_eq!(join::stats().hits, 1);
    assert!(join::invalidate("a", "c"));

    assert_eq!(label(3_u32, "km"), "3 km");
    assert_eq!(label(3_u32, "km"), "3 km");
    assert!(label::invalidate(3_u32, "km"));

    let text = String::from("to be or not to be");
    let parser = Parser { source: &text };
    assert_eq!(parser.word_count("be"), 2);
    assert_eq!(parser.word_count("be"), 2);
    assert_eq!(Parser::word_count_stats().hits, 1);
}
