use proc_macro2::TokenStream;
use quote::quote;

use super::*;
use crate::shared::inspect::messages;

/// Reads `tokens` with a parser that knows `ttl`, `flag`, `store` and `crate`.
#[derive(Default)]
struct Read {
    ttl: Option<Spanned<u64>>,
    flag: Option<Spanned<bool>>,
    store: Option<Spanned<Expr>>,
    krate: Option<Spanned<Path>>,
}

impl AttributeOptions for Read {
    fn read_option(&mut self, meta: &ParseNestedMeta, name: &str, span: Span) -> syn::Result<()> {
        match name {
            "ttl" => set_once(&mut self.ttl, "ttl", span, || {
                duration_value(meta, "ttl", span)
            }),
            "flag" => set_once(&mut self.flag, "flag", span, || {
                flag_value(meta, "flag", span)
            }),
            "store" => set_once(&mut self.store, "store", span, || store_value(meta, span)),
            "crate" => set_once(&mut self.krate, "crate", span, || crate_value(meta, span)),
            _ => Err(unknown_option("test", meta, "ttl, flag, store, crate")),
        }
    }

    fn crate_option(&self) -> Option<&Spanned<Path>> {
        self.krate.as_ref()
    }

    fn check_combinations(&self, errors: &mut Errors) {
        if let (Some(flag), None) = (&self.flag, &self.ttl) {
            errors.push(Error::new(flag.span, "`flag` needs `ttl`"));
        }
    }
}

fn read(tokens: TokenStream) -> (Read, Vec<String>) {
    let mut errors = Errors::default();
    let read = Read::parse(tokens, &mut errors);
    (read, messages(errors))
}

#[test]
fn reads_each_kind_of_value() {
    let (read, errors) = read(quote!(
        ttl = "1m30s",
        flag = false,
        store = stores::pages(),
        crate = "renamed::runtime"
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        read.runtime_path().to_string(),
        quote!(renamed::runtime).to_string()
    );
    assert_eq!(read.ttl.map(|ttl| ttl.value), Some(90_000));
    assert_eq!(read.flag.map(|flag| flag.value), Some(false));
    let store = &read.store.as_ref().expect("store").value;
    assert_eq!(
        quote!(#store).to_string(),
        quote!(stores::pages()).to_string()
    );
    let krate = read.krate.expect("crate");
    assert_eq!(path_text(&krate.value), "renamed::runtime");
    assert_eq!(
        Read::default().runtime_path().to_string(),
        quote!(::cachemacro_runtime).to_string()
    );
}

#[test]
fn every_error_is_kept_and_the_options_after_it_are_read() {
    let (read, errors) = read(quote!(
        ttl,
        flag = "yes",
        colour::dark = 1,
        crate = "not a path",
        ttl = "2m",
        ttl = "3m"
    ));
    assert_eq!(
        errors,
        [
            format!("`ttl` needs a value: {DURATION_ACCEPTED}"),
            "invalid `flag`: expected `true` or `false`".to_owned(),
            "unknown test option `colour::dark`; expected one of: ttl, flag, store, crate"
                .to_owned(),
            format!("invalid `crate`: {CRATE_ACCEPTED}"),
            "duplicate `ttl` option; give it once".to_owned(),
        ]
    );
    // The first valid `ttl` counts; the duplicate after it is only reported.
    assert_eq!(read.ttl.map(|ttl| ttl.value), Some(120_000));
}

#[test]
fn contradictions_are_checked_after_every_option_is_read() {
    let (_, errors) = read(quote!(flag = true, colour = 1));
    assert_eq!(
        errors,
        [
            "unknown test option `colour`; expected one of: ttl, flag, store, crate",
            "`flag` needs `ttl`"
        ]
    );
    let (_, errors) = read(quote!(flag = true, ttl = 1));
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_duplicate_is_reported_even_when_its_value_is_wrong() {
    let (_, errors) = read(quote!(ttl = 1, flag = true, flag = 3));
    assert_eq!(errors, ["duplicate `flag` option; give it once"]);
}

#[test]
fn a_malformed_store_keeps_syn_s_own_error() {
    let (read, errors) = read(quote!(store = , ttl = 1));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("expected an expression"), "{errors:?}");
    assert_eq!(read.ttl.map(|ttl| ttl.value), Some(1_000));
}

#[test]
fn the_qualified_name_is_computed_where_the_expansion_lands() {
    let name = qualified_name(&syn::parse_quote!(book));
    assert_eq!(
        name.to_string(),
        quote!(::core::concat!(::core::module_path!(), "::", "book")).to_string()
    );
}
