//! Parsing `#[memoize(...)]` options into [`MemoizeArgs`], each kept with its span.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{token, Error, Expr, Ident, LitInt, LitStr, Path, Token};

use crate::shared::errors::Errors;
use crate::shared::options::{
    crate_value, duration_value, expression_value, flag_value, option_value, set_once, store_value,
    unknown_option, AttributeOptions, Spanned,
};

const OPTIONS: &str = "ttl, tti, stale, capacity, max_bytes, weigher, key, ignore, name, \
     cache_err, cache_if, store, crate";
const CAPACITY_ACCEPTED: &str =
    "expected a positive integer number of entries, like `capacity = 10_000`";

#[derive(Default)]
pub(crate) struct MemoizeArgs {
    /// Time to live, in milliseconds.
    pub(crate) ttl: Option<Spanned<u64>>,
    /// Time to idle, in milliseconds.
    pub(crate) tti: Option<Spanned<u64>>,
    /// Stale-while-revalidate window after `ttl`, in milliseconds.
    pub(crate) stale: Option<Spanned<u64>>,
    pub(crate) capacity: Option<Spanned<usize>>,
    /// Bound on the default store's total weight.
    pub(crate) max_bytes: Option<Spanned<u64>>,
    /// Weight of one entry, for `max_bytes`.
    pub(crate) weigher: Option<Spanned<Expr>>,
    pub(crate) key: Option<Spanned<Expr>>,
    pub(crate) ignore: Option<Spanned<Vec<Ident>>>,
    pub(crate) name: Option<Spanned<LitStr>>,
    pub(crate) cache_err: Option<Spanned<bool>>,
    pub(crate) cache_if: Option<Spanned<Expr>>,
    pub(crate) store: Option<Spanned<Expr>>,
    pub(crate) krate: Option<Spanned<Path>>,
}

impl AttributeOptions for MemoizeArgs {
    fn read_option(&mut self, meta: &ParseNestedMeta, name: &str, span: Span) -> syn::Result<()> {
        match name {
            "ttl" => set_once(&mut self.ttl, "ttl", span, || {
                duration_value(meta, "ttl", span)
            }),
            "tti" => set_once(&mut self.tti, "tti", span, || {
                duration_value(meta, "tti", span)
            }),
            "stale" => set_once(&mut self.stale, "stale", span, || {
                duration_value(meta, "stale", span)
            }),
            "capacity" => set_once(&mut self.capacity, "capacity", span, || {
                let lit: LitInt = option_value(meta, "capacity", span, CAPACITY_ACCEPTED)?;
                match lit.base10_parse::<usize>() {
                    Ok(0) | Err(_) => Err(Error::new(
                        lit.span(),
                        "`capacity` must be a positive integer number of entries, like `capacity = 10_000`",
                    )),
                    Ok(entries) => Ok(entries),
                }
            }),
            "key" => set_once(&mut self.key, "key", span, || {
                expression_value(
                    meta,
                    "key",
                    span,
                    "expected an expression over the arguments, like `key = user.id`",
                )
            }),
            "ignore" => set_once(&mut self.ignore, "ignore", span, || {
                if !meta.input.peek(token::Paren) {
                    return Err(Error::new(
                        span,
                        "`ignore` takes the names of the arguments to leave out of the key, like `ignore(db)`",
                    ));
                }
                let content;
                syn::parenthesized!(content in meta.input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )?;
                if names.is_empty() {
                    return Err(Error::new(
                        span,
                        "`ignore(..)` needs at least one argument name, like `ignore(db)`",
                    ));
                }
                Ok(names.into_iter().collect())
            }),
            "name" => set_once(&mut self.name, "name", span, || {
                let lit: LitStr = option_value(
                    meta,
                    "name",
                    span,
                    "expected a string, like `name = \"geo.nearby_stores\"`",
                )?;
                if lit.value().is_empty() {
                    return Err(Error::new(lit.span(), "`name` must not be empty"));
                }
                Ok(lit)
            }),
            "cache_err" => set_once(&mut self.cache_err, "cache_err", span, || {
                flag_value(meta, "cache_err", span)
            }),
            "cache_if" => set_once(&mut self.cache_if, "cache_if", span, || {
                expression_value(
                    meta,
                    "cache_if",
                    span,
                    "expected a predicate on the result, like `cache_if = |found: &Vec<u32>| !found.is_empty()`",
                )
            }),
            "max_bytes" => set_once(&mut self.max_bytes, "max_bytes", span, || {
                const ACCEPTED: &str =
                    "expected a positive integer number of bytes, like `max_bytes = 64_000_000`";
                let lit: LitInt = option_value(meta, "max_bytes", span, ACCEPTED)?;
                match lit.base10_parse::<u64>() {
                    Ok(0) | Err(_) => Err(Error::new(
                        lit.span(),
                        format!("invalid `max_bytes`: {ACCEPTED}"),
                    )),
                    Ok(bytes) => Ok(bytes),
                }
            }),
            "weigher" => set_once(&mut self.weigher, "weigher", span, || {
                expression_value(
                    meta,
                    "weigher",
                    span,
                    "expected the weight of one entry, like `weigher = |_: &(u32,), page: &String| page.len() as u32`",
                )
            }),
            "store" => set_once(&mut self.store, "store", span, || store_value(meta, span)),
            "crate" => set_once(&mut self.krate, "crate", span, || crate_value(meta, span)),
            _ => Err(unknown_option("memoize", meta, OPTIONS)),
        }
    }

    fn crate_option(&self) -> Option<&Spanned<Path>> {
        self.krate.as_ref()
    }

    fn check_combinations(&self, errors: &mut Errors) {
        if let (Some(weigher), None) = (&self.weigher, &self.max_bytes) {
            errors.push(Error::new(
                weigher.span,
                "`weigher` weighs entries against `max_bytes`; add `max_bytes = ..`",
            ));
        }
        if let (Some(stale), None) = (&self.stale, &self.ttl) {
            errors.push(Error::new(
                    stale.span,
                    "`stale` is a window after `ttl` and needs one: add `ttl = \"..\"`, like `ttl = \"1m\", stale = \"5m\"`",
                ),
            );
        }
        if let (Some(_), Some(ignore)) = (&self.key, &self.ignore) {
            errors.push(Error::new(
                    ignore.span,
                    "`ignore` has no effect together with `key`: the key expression alone decides what forms the key",
                ),
            );
        }
        if self.store.is_some() {
            for (option, span) in [
                ("capacity", self.capacity.as_ref().map(|o| o.span)),
                ("tti", self.tti.as_ref().map(|o| o.span)),
                ("max_bytes", self.max_bytes.as_ref().map(|o| o.span)),
                ("weigher", self.weigher.as_ref().map(|o| o.span)),
            ] {
                if let Some(span) = span {
                    errors.push(Error::new(
                            span,
                            format!(
                                "`{option}` configures the default in-memory store and cannot be combined with `store`; \
                                 configure the store you pass instead"
                            ),
                        ),
                    );
                }
            }
        }
        if let (Some(cache_err), Some(_)) = (&self.cache_err, &self.cache_if) {
            if cache_err.value {
                errors.push(Error::new(
                        cache_err.span,
                        "`cache_err` and `cache_if` both decide what is stored; with `cache_if`, return true for the `Err` values to keep",
                    ),
                );
            }
        }
    }
}

impl MemoizeArgs {
    pub(crate) fn ignores(&self, name: &str) -> bool {
        self.ignore
            .as_ref()
            .is_some_and(|ignore| ignore.value.iter().any(|ident| ident == name))
    }
}
