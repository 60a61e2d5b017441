//! Which query parameters stay out of a page's key: glob patterns over parameter names
//! (`utm_*`, `fbclid`), for the tracking parameters that make every link a new page.
//!
//! Names are matched as sent, still percent-encoded: decoding first would let
//! `utm%5Fsource` and `utm_source` both match, but also make two different raw names
//! one, and a parameter nobody percent-encodes in practice is not worth that. A name
//! the patterns miss stays in the key, which is never wrong, only less shared.

use std::sync::Arc;

/// The patterns of `ignore_query`, validated.
#[derive(Clone, Debug, Default)]
pub(crate) struct IgnoredParameters(Arc<[Box<str>]>);

impl IgnoredParameters {
    /// These patterns added to `self`'s (a repeated pattern is kept once).
    ///
    /// # Panics
    ///
    /// If a pattern is empty or holds a character no query parameter name can hold.
    pub(crate) fn with<I>(&self, patterns: I) -> IgnoredParameters
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut all: Vec<Box<str>> = self.0.to_vec();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if let Some(problem) = pattern_problem(pattern) {
                panic!("invalid `ignore_query` pattern `{pattern}`: {problem}");
            }
            if !all.iter().any(|known| &**known == pattern) {
                all.push(pattern.into());
            }
        }
        IgnoredParameters(all.into())
    }

    /// Whether the parameter `name` (raw, as sent) stays out of the key.
    pub(crate) fn ignores(&self, name: &str) -> bool {
        self.0.iter().any(|pattern| glob_matches(pattern, name))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why `pattern` cannot be an `ignore_query` pattern, if it cannot: empty, or a character
/// RFC 3986 does not allow in a query (§3.4), or one that ends a parameter name there
/// (`&`, `=`, `#`).
pub(crate) fn pattern_problem(pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some("a pattern cannot be empty".to_owned());
    }
    pattern
        .chars()
        .find(|&c| !is_name_char(c))
        .map(|c| format!("{c:?} cannot be part of a query parameter name"))
}

/// A character of a raw query parameter name: RFC 3986 `pchar`, `/` or `?`, less the
/// `&` and `=` that delimit names (`*` and `?` are also the glob's wildcards).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$'()*+,;:@/?".contains(c)
}

/// Whether `name` matches the glob `pattern`: `*` stands for any run of characters
/// (empty too), `?` for exactly one, every other character for itself (case-sensitive,
/// as query parameter names are).
///
/// Iterative, with one backtracking point (the last `*`): linear in practice, and never
/// exponential on patterns like `*a*a*a*b`.
pub(crate) fn glob_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the first character of `name` it has not yet eaten.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` eat one more character and try again after it.
                Some((star_at, eaten)) => {
                    p = star_at + 1;
                    n = eaten + 1;
                    star = Some((star_at, eaten + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_is_any_run_and_a_question_mark_one_character() {
        for (pattern, name) in [
            ("utm_*", "utm_source"),
            ("utm_*", "utm_"),
            ("fbclid", "fbclid"),
            ("*", ""),
            ("*", "anything"),
            ("*id", "fbclid"),
            ("a*b*c", "aXbYc"),
            ("a*b*c", "abc"),
            ("?", "x"),
            ("utm_???", "utm_abc"),
            ("*a*a*b", "aaaaaaaaaaaaaaaaaaaab"),
            ("**", "x"),
        ] {
            assert!(glob_matches(pattern, name), "{pattern} ~ {name}");
        }
        for (pattern, name) in [
            ("utm_*", "utm"),
            ("utm_*", "xutm_source"),
            ("fbclid", "fbclid2"),
            ("fbclid", "FBCLID"),
            ("?", ""),
            ("?", "xy"),
            ("utm_???", "utm_ab"),
            ("a*b*c", "aXbY"),
            ("*a*a*b", "aaaaaaaaaaaaaaaaaaaaa"),
            ("", "x"),
        ] {
            assert!(!glob_matches(pattern, name), "{pattern} !~ {name}");
        }
    }

    #[test]
    fn names_are_matched_raw() {
        let ignored = IgnoredParameters::default().with(["utm_*"]);
        assert!(ignored.ignores("utm_source"));
        assert!(!ignored.ignores("utm%5Fsource"));
    }

    #[test]
    fn patterns_are_validated_and_kept_once() {
        assert_eq!(pattern_problem("utm_*"), None);
        assert_eq!(pattern_problem("a%20b"), None);
        assert!(pattern_problem("").is_some());
        for bad in ["utm source", "a&b", "a=b", "a#b", "é"] {
            assert!(pattern_problem(bad).is_some(), "{bad}");
        }
        let ignored = IgnoredParameters::default()
            .with(["fbclid", "utm_*"])
            .with(["fbclid"]);
        assert_eq!(ignored.0.len(), 2);
    }

    #[test]
    #[should_panic(expected = "a pattern cannot be empty")]
    fn an_empty_pattern_panics() {
        let _ = IgnoredParameters::default().with([""]);
    }
}
