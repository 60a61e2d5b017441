//! Parsing `#[memoize(...)]` options into [`MemoizeArgs`], each kept with its span.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, Parser};
use syn::punctuated::Punctuated;
use syn::{token, Error, Expr, Ident, LitBool, LitInt, LitStr, Path, Token};

use crate::duration::{parse_duration_lit, DURATION_ACCEPTED};

const OPTIONS: &str = "ttl, tti, stale, capacity, max_bytes, weigher, key, ignore, name, \
     cache_err, cache_if, store, crate";
const CAPACITY_ACCEPTED: &str =
    "expected a positive integer number of entries, like `capacity = 10_000`";
const CRATE_ACCEPTED: &str =
    "expected the path of the runtime crate as a string, like `crate = \"my_cache_runtime\"`";

/// An option's value and where it was written, for errors that point at it.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

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

impl MemoizeArgs {
    /// Parses the attribute's tokens; every problem found is reported, combined.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<MemoizeArgs> {
        let mut args = MemoizeArgs::default();
        let mut errors = parse_options(tokens, |meta, name, span| {
            args.parse_option(meta, name, span)
        });
        args.check_combinations(&mut errors);
        match errors {
            Some(error) => Err(error),
            None => Ok(args),
        }
    }

    fn parse_option(&mut self, meta: &ParseNestedMeta, name: &str, span: Span) -> syn::Result<()> {
        match name {
            "ttl" => set_once(&mut self.ttl, "ttl", span, || {
                parse_duration_lit("ttl", &option_value(meta, "ttl", span, DURATION_ACCEPTED)?)
            }),
            "tti" => set_once(&mut self.tti, "tti", span, || {
                parse_duration_lit("tti", &option_value(meta, "tti", span, DURATION_ACCEPTED)?)
            }),
            "stale" => set_once(&mut self.stale, "stale", span, || {
                parse_duration_lit(
                    "stale",
                    &option_value(meta, "stale", span, DURATION_ACCEPTED)?,
                )
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
                Ok(
                    option_value::<LitBool>(meta, "cache_err", span, "expected `true` or `false`")?
                        .value,
                )
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
            "store" => set_once(&mut self.store, "store", span, || {
                expression_value(
                    meta,
                    "store",
                    span,
                    "expected a store, like `store = MemoryStore::builder().build()`",
                )
            }),
            "crate" => set_once(&mut self.krate, "crate", span, || {
                let lit: LitStr = option_value(meta, "crate", span, CRATE_ACCEPTED)?;
                lit.parse::<Path>().map_err(|_| {
                    Error::new(lit.span(), format!("invalid `crate`: {CRATE_ACCEPTED}"))
                })
            }),
            _ => Err(Error::new_spanned(
                &meta.path,
                format!(
                    "unknown memoize option `{}`; expected one of: {OPTIONS}",
                    path_text(&meta.path)
                ),
            )),
        }
    }

    /// Options that are valid alone but contradict each other.
    fn check_combinations(&self, errors: &mut Option<Error>) {
        if let (Some(weigher), None) = (&self.weigher, &self.max_bytes) {
            combine(
                errors,
                Error::new(
                    weigher.span,
                    "`weigher` weighs entries against `max_bytes`; add `max_bytes = ..`",
                ),
            );
        }
        if let (Some(stale), None) = (&self.stale, &self.ttl) {
            combine(
                errors,
                Error::new(
                    stale.span,
                    "`stale` is a window after `ttl` and needs one: add `ttl = \"..\"`, like `ttl = \"1m\", stale = \"5m\"`",
                ),
            );
        }
        if let (Some(_), Some(ignore)) = (&self.key, &self.ignore) {
            combine(
                errors,
                Error::new(
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
                    combine(
                        errors,
                        Error::new(
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
                combine(
                    errors,
                    Error::new(
                        cache_err.span,
                        "`cache_err` and `cache_if` both decide what is stored; with `cache_if`, return true for the `Err` values to keep",
                    ),
                );
            }
        }
    }

    pub(crate) fn runtime_path(&self) -> Path {
        match &self.krate {
            Some(path) => path.value.clone(),
            None => syn::parse_quote!(::cachemacro_runtime),
        }
    }

    pub(crate) fn ignores(&self, name: &str) -> bool {
        self.ignore
            .as_ref()
            .is_some_and(|ignore| ignore.value.iter().any(|ident| ident == name))
    }
}

/// The literal after `option =`. When it is missing or of another kind, the error says
/// what is `expected` instead of syn's bare "expected `=`" or "expected integer literal".
fn option_value<T: Parse>(
    meta: &ParseNestedMeta,
    option: &str,
    span: Span,
    expected: &str,
) -> syn::Result<T> {
    if !meta.input.peek(Token![=]) {
        return Err(Error::new(
            span,
            format!("`{option}` needs a value: {expected}"),
        ));
    }
    meta.value()?
        .parse()
        .map_err(|error| Error::new(error.span(), format!("invalid `{option}`: {expected}")))
}

/// The expression after `option =`; a malformed expression keeps syn's own error.
fn expression_value(
    meta: &ParseNestedMeta,
    option: &str,
    span: Span,
    expected: &str,
) -> syn::Result<Expr> {
    if !meta.input.peek(Token![=]) {
        return Err(Error::new(
            span,
            format!("`{option}` needs a value: {expected}"),
        ));
    }
    meta.value()?.parse()
}

/// Runs `parse_option(meta, name, span)` for each `name = ..` or `name(..)` of an
/// attribute and returns every error, combined. After an error the rest of that option
/// is skipped, so the options after it are still checked.
pub(crate) fn parse_options(
    tokens: TokenStream,
    mut parse_option: impl FnMut(&ParseNestedMeta, &str, Span) -> syn::Result<()>,
) -> Option<Error> {
    let mut errors: Option<Error> = None;
    let parser = syn::meta::parser(|meta| {
        let span = meta
            .path
            .segments
            .first()
            .map_or_else(Span::call_site, |s| s.ident.span());
        let name = meta
            .path
            .get_ident()
            .map(|ident| ident.unraw().to_string())
            .unwrap_or_default();
        if let Err(error) = parse_option(&meta, &name, span) {
            combine(&mut errors, error);
            while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                meta.input.parse::<proc_macro2::TokenTree>()?;
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(tokens) {
        combine(&mut errors, error);
    }
    errors
}

pub(crate) fn set_once<T>(
    slot: &mut Option<Spanned<T>>,
    option: &str,
    span: Span,
    parse: impl FnOnce() -> syn::Result<T>,
) -> syn::Result<()> {
    if slot.is_some() {
        // Still consume the value so that the error is about the duplicate alone.
        let _ = parse();
        return Err(Error::new(
            span,
            format!("duplicate `{option}` option; give it once"),
        ));
    }
    *slot = Some(Spanned {
        value: parse()?,
        span,
    });
    Ok(())
}

pub(crate) fn combine(errors: &mut Option<Error>, error: Error) {
    match errors {
        Some(existing) => existing.combine(error),
        None => *errors = Some(error),
    }
}

pub(crate) fn path_text(path: &Path) -> String {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
