//! Reading `name = value` options of an attribute, each kept with its span, and the
//! values both macros accept the same way (`ttl`, `store`, `crate`, flags, strings).
//!
//! A value that is missing or of another kind gets an error that says what is accepted,
//! not syn's bare "expected `=`" or "expected integer literal".

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Error, Expr, Ident, Lit, LitBool, Path, Token};

use super::duration::{parse_duration_lit, DURATION_ACCEPTED};
use super::errors::Errors;

const CRATE_ACCEPTED: &str =
    "expected the path of the runtime crate as a string, like `crate = \"my_cache_runtime\"`";

/// An option's value and where it was written, for errors that point at it.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// The options of one attribute, each kept with its span.
pub(crate) trait AttributeOptions: Default {
    /// Reads the option `name` (written at `span`) from `meta`.
    fn read_option(&mut self, meta: &ParseNestedMeta, name: &str, span: Span) -> syn::Result<()>;

    /// The `crate = ".."` option, if it was given.
    fn crate_option(&self) -> Option<&Spanned<Path>>;

    /// Reports the options that are valid alone but contradict each other.
    fn check_combinations(&self, _errors: &mut Errors) {}

    /// Parses the attribute's tokens, keeping every problem found in `errors`. The options
    /// that were read are returned whatever else was wrong: the stand-in companions of a
    /// failed expansion are shaped by them.
    fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut options = Self::default();
        read_each_option(tokens, errors, |meta, name, span| {
            options.read_option(meta, name, span)
        });
        options.check_combinations(errors);
        options
    }

    /// The path generated code reaches the runtime by: the `crate` option, or the
    /// runtime's own name.
    fn runtime_path(&self) -> TokenStream {
        match self.crate_option() {
            Some(path) => path.value.to_token_stream(),
            None => quote!(::cachemacro_runtime),
        }
    }
}

/// Runs `read_option(meta, name, span)` for each `name = ..` or `name(..)` of an
/// attribute and keeps every error in `errors`. After an error the rest of that option
/// is skipped, so the options after it are still checked.
fn read_each_option(
    tokens: TokenStream,
    errors: &mut Errors,
    mut read_option: impl FnMut(&ParseNestedMeta, &str, Span) -> syn::Result<()>,
) {
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
        if let Err(error) = read_option(&meta, &name, span) {
            errors.push(error);
            while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                meta.input.parse::<proc_macro2::TokenTree>()?;
            }
        }
        Ok(())
    });
    let outcome = parser.parse2(tokens);
    errors.keep(outcome);
}

/// Stores what `parse` reads in `slot`, unless the option was given before.
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

/// The error for an option `attribute` does not know, on its path.
pub(crate) fn unknown_option(attribute: &str, meta: &ParseNestedMeta, accepted: &str) -> Error {
    Error::new_spanned(
        &meta.path,
        format!(
            "unknown {attribute} option `{}`; expected one of: {accepted}",
            path_text(&meta.path)
        ),
    )
}

/// The tokens after `option =`; when there is no `=`, the error says what is `expected`.
pub(crate) fn value_after_eq<'a>(
    meta: &'a ParseNestedMeta,
    option: &str,
    span: Span,
    expected: &str,
) -> syn::Result<ParseStream<'a>> {
    if !meta.input.peek(Token![=]) {
        return Err(Error::new(
            span,
            format!("`{option}` needs a value: {expected}"),
        ));
    }
    meta.value()
}

/// The literal after `option =`, of the kind `T`.
pub(crate) fn option_value<T: Parse>(
    meta: &ParseNestedMeta,
    option: &str,
    span: Span,
    expected: &str,
) -> syn::Result<T> {
    value_after_eq(meta, option, span, expected)?
        .parse()
        .map_err(|error| Error::new(error.span(), format!("invalid `{option}`: {expected}")))
}

/// The expression after `option =`; a malformed expression keeps syn's own error.
pub(crate) fn expression_value(
    meta: &ParseNestedMeta,
    option: &str,
    span: Span,
    expected: &str,
) -> syn::Result<Expr> {
    value_after_eq(meta, option, span, expected)?.parse()
}

/// The literal of a duration option (`ttl = "15m"`), for checks of its own before
/// `parse_duration_lit`.
pub(crate) fn duration_lit(meta: &ParseNestedMeta, option: &str, span: Span) -> syn::Result<Lit> {
    option_value(meta, option, span, DURATION_ACCEPTED)
}

/// A duration option, in milliseconds.
pub(crate) fn duration_value(meta: &ParseNestedMeta, option: &str, span: Span) -> syn::Result<u64> {
    parse_duration_lit(option, &duration_lit(meta, option, span)?)
}

/// `option = true` or `option = false`.
pub(crate) fn flag_value(meta: &ParseNestedMeta, option: &str, span: Span) -> syn::Result<bool> {
    Ok(option_value::<LitBool>(meta, option, span, "expected `true` or `false`")?.value)
}

/// `store = <expr>`: the store the cache keeps its entries in.
pub(crate) fn store_value(meta: &ParseNestedMeta, span: Span) -> syn::Result<Expr> {
    expression_value(
        meta,
        "store",
        span,
        "expected a store, like `store = MemoryStore::builder().build()`",
    )
}

/// `crate = "path"`: where the runtime is when the dependency was renamed.
pub(crate) fn crate_value(meta: &ParseNestedMeta, span: Span) -> syn::Result<Path> {
    let lit: syn::LitStr = option_value(meta, "crate", span, CRATE_ACCEPTED)?;
    lit.parse::<Path>()
        .map_err(|_| Error::new(lit.span(), format!("invalid `crate`: {CRATE_ACCEPTED}")))
}

/// `module::path::function`, computed where the expansion lands: the default name of a
/// function's cache.
pub(crate) fn qualified_name(function: &Ident) -> TokenStream {
    let function = function.to_string();
    quote!(::core::concat!(::core::module_path!(), "::", #function))
}

/// `a::b` as written, for messages.
fn path_text(path: &Path) -> String {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

#[cfg(test)]
mod tests;
