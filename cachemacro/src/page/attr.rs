//! Parsing `#[cache_page(...)]` options into [`PageArgs`], each kept with its span.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Error, Expr, ExprArray, Lit, LitStr, Path};

use crate::shared::duration::{parse_duration, parse_duration_lit};
use crate::shared::options::{
    crate_value, duration_lit, duration_value, flag_value, option_value, set_once, store_value,
    unknown_option, value_after_eq, AttributeOptions, Spanned,
};

const OPTIONS: &str = "ttl, stale, store, key_prefix, vary, query, ignore_query, crate";

#[derive(Default)]
pub(crate) struct PageArgs {
    /// Freshness when the response sets no `max-age`, in milliseconds.
    pub(crate) ttl: Option<Spanned<u64>>,
    /// How long an expired page may still be served while one request re-renders it, in
    /// milliseconds.
    pub(crate) stale: Option<Spanned<u64>>,
    pub(crate) store: Option<Spanned<Expr>>,
    pub(crate) key_prefix: Option<Spanned<LitStr>>,
    /// Request headers that select a different page.
    pub(crate) vary: Option<Spanned<Vec<LitStr>>>,
    /// Whether the query string is part of the key.
    pub(crate) query: Option<Spanned<bool>>,
    /// Glob patterns of query parameters left out of the key; checked in `validate`.
    pub(crate) ignore_query: Option<Spanned<Vec<LitStr>>>,
    pub(crate) krate: Option<Spanned<Path>>,
}

impl AttributeOptions for PageArgs {
    fn read_option(&mut self, meta: &ParseNestedMeta, name: &str, span: Span) -> syn::Result<()> {
        match name {
            "ttl" => set_once(&mut self.ttl, "ttl", span, || {
                duration_value(meta, "ttl", span)
            }),
            "stale" => set_once(&mut self.stale, "stale", span, || {
                let lit = duration_lit(meta, "stale", span)?;
                let zero = match &lit {
                    Lit::Int(seconds) => seconds.base10_parse::<u64>().ok() == Some(0),
                    Lit::Str(text) => parse_duration(&text.value()) == Ok(0),
                    _ => false,
                };
                if zero {
                    return Err(Error::new(
                        lit.span(),
                        "a zero `stale` window is the default (an expired page is never served); leave `stale` out",
                    ));
                }
                parse_duration_lit("stale", &lit)
            }),
            "store" => set_once(&mut self.store, "store", span, || store_value(meta, span)),
            "key_prefix" => set_once(&mut self.key_prefix, "key_prefix", span, || {
                option_value(
                    meta,
                    "key_prefix",
                    span,
                    "expected a string, like `key_prefix = \"books:\"`",
                )
            }),
            "vary" => set_once(&mut self.vary, "vary", span, || {
                string_list(meta, "vary", span, HEADER_NAMES, |name| {
                    if is_header_name(&name.value()) {
                        Ok(())
                    } else {
                        Err(Error::new(
                            name.span(),
                            format!("`{}` is not a valid header name", name.value()),
                        ))
                    }
                })
            }),
            "ignore_query" => set_once(&mut self.ignore_query, "ignore_query", span, || {
                string_list(meta, "ignore_query", span, PARAMETER_PATTERNS, |_| Ok(()))
            }),
            "query" => set_once(&mut self.query, "query", span, || {
                flag_value(meta, "query", span)
            }),
            "crate" => set_once(&mut self.krate, "crate", span, || crate_value(meta, span)),
            _ => Err(unknown_option("cache_page", meta, OPTIONS)),
        }
    }

    fn crate_option(&self) -> Option<&Spanned<Path>> {
        self.krate.as_ref()
    }
}

/// What a list option holds, and an example of it.
struct ListOf {
    what: &'static str,
    example: &'static str,
}

const HEADER_NAMES: ListOf = ListOf {
    what: "header names",
    example: "vary = [\"Accept-Language\"]",
};

const PARAMETER_PATTERNS: ListOf = ListOf {
    what: "query parameter patterns",
    example: "ignore_query = [\"utm_*\", \"fbclid\"]",
};

/// `option = ["..", ..]`: string literals, each passed to `check` in order.
fn string_list(
    meta: &ParseNestedMeta,
    option: &str,
    span: Span,
    list_of: ListOf,
    check: impl Fn(&LitStr) -> syn::Result<()>,
) -> syn::Result<Vec<LitStr>> {
    let ListOf { what, example } = list_of;
    let list: ExprArray = value_after_eq(
        meta,
        option,
        span,
        &format!("expected a list of {what}, like `{example}`"),
    )?
    .parse()
    .map_err(|error: Error| {
        Error::new(
            error.span(),
            format!("`{option}` takes a list of {what}, like `{example}`"),
        )
    })?;
    let mut strings = Vec::new();
    for element in &list.elems {
        match element {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(string),
                ..
            }) => {
                check(string)?;
                strings.push(string.clone());
            }
            other => {
                return Err(Error::new_spanned(
                    other,
                    format!("`{option}` lists {what} as string literals, like `{example}`"),
                ))
            }
        }
    }
    Ok(strings)
}

/// RFC 9110 §5.1: a field name is a token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}
