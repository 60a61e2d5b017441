//! Durations written in attributes: `"15m"`, `"1h30m"`, `"500ms"`, or integer seconds.
//!
//! Parsed at compile time so that a typo is a compile error on the literal, never a
//! panic on the first call.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Error, Lit};

pub(crate) const DURATION_ACCEPTED: &str =
    "expected a duration like \"15m\", \"1h30m\" or \"500ms\" (units: ms, s, m, h, d), or an integer number of seconds";

/// A duration in milliseconds, read from a string or integer literal.
pub(crate) fn parse_duration_lit(option: &str, lit: &Lit) -> syn::Result<u64> {
    let millis = match lit {
        Lit::Str(text) => parse_duration(&text.value()).map_err(|why| {
            Error::new(
                text.span(),
                format!("invalid `{option}` {why}: {DURATION_ACCEPTED}"),
            )
        })?,
        Lit::Int(seconds) => seconds
            .base10_parse::<u64>()
            .ok()
            .and_then(|seconds| seconds.checked_mul(1000))
            .ok_or_else(|| {
                Error::new(
                    seconds.span(),
                    format!(
                        "`{option}` of {seconds} seconds is too large; the most is {} seconds",
                        u64::MAX / 1000
                    ),
                )
            })?,
        other => {
            return Err(Error::new(
                other.span(),
                format!(
                    "invalid `{option}` `{}`: {DURATION_ACCEPTED}",
                    other.to_token_stream()
                ),
            ))
        }
    };
    if millis == 0 {
        return Err(Error::new(
            lit.span(),
            format!(
                "`{option}` must be longer than zero (a zero {option} would expire every entry at once); \
                 leave `{option}` out to keep entries until they are evicted"
            ),
        ));
    }
    Ok(millis)
}

/// The generated `Duration` of `millis`, through the runtime at `rt`.
pub(crate) fn duration_tokens(rt: &TokenStream, millis: u64) -> TokenStream {
    quote!(#rt::__private::Duration::from_millis(#millis))
}

/// Parses `"1h30m"`-style text into milliseconds; the error says what was wrong.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    if text.trim().is_empty() {
        return Err("(empty string)".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let digits = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '_')
                .len();
        if digits == 0 {
            return Err(format!("`{text}`: expected a number before `{rest}`"));
        }
        let number: u64 = rest[..digits]
            .replace('_', "")
            .parse()
            .map_err(|_| format!("`{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        let millis_per_unit = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{text}`: `{number}` has no unit")),
            other => return Err(format!("`{text}`: unknown unit `{other}`")),
        };
        rest = rest[unit_len..].trim_start();
        total = number
            .checked_mul(millis_per_unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("`{text}`: duration too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse_duration("15m"), Ok(900_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("1m 30s"), Ok(90_000));
        assert_eq!(parse_duration("10_000ms"), Ok(10_000));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("15x")
            .unwrap_err()
            .contains("unknown unit `x`"));
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert!(parse_duration("m")
            .unwrap_err()
            .contains("expected a number"));
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
