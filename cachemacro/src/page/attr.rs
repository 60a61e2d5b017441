//! Parsing `#[cache_page(...)]` options into [`PageArgs`], each kept with its span.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Error, Expr, ExprArray, Lit, LitStr, Path};

use crate::shared::duration::{parse_duration, parse_duration_lit};
use crate::shared::options::{
    crate_value, duration_lit, duration_value, flag_value, option_value, set_once, store_value,
    unknown_option, value_after_eq, AttributeOptions, Spanned,
};

const OPTIONS: &str = "ttl, stale, store, key_prefix, vary, query, crate";
const VARY_ACCEPTED: &str =
    "`vary` takes a list of header names, like `vary = [\"Accept-Language\"]`";

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
            "vary" => set_once(&mut self.vary, "vary", span, || parse_vary(meta, span)),
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

/// `vary = ["Accept-Language", ..]`: string literals that are header names.
fn parse_vary(meta: &ParseNestedMeta, span: Span) -> syn::Result<Vec<LitStr>> {
    let list: ExprArray = value_after_eq(
        meta,
        "vary",
        span,
        "expected a list of header names, like `vary = [\"Accept-Language\"]`",
    )?
    .parse()
    .map_err(|error: Error| Error::new(error.span(), VARY_ACCEPTED))?;
    let mut names = Vec::new();
    for element in &list.elems {
        match element {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(name),
                ..
            }) if is_header_name(&name.value()) => names.push(name.clone()),
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(name),
                ..
            }) => {
                return Err(Error::new(
                    name.span(),
                    format!("`{}` is not a valid header name", name.value()),
                ))
            }
            other => return Err(Error::new_spanned(
                other,
                "`vary` lists header names as string literals, like `vary = [\"Accept-Language\"]`",
            )),
        }
    }
    Ok(names)
}

/// RFC 9110 §5.1: a field name is a token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}
