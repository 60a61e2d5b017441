//! `#[cache_page]`: parse, validate, expand.
//!
//! The handler as written becomes an inner function of the same shape; the outer
//! function keeps the name, visibility and attributes, takes the same extractors plus
//! one hidden extractor in front (the request head, taken from the request parts so the
//! body extractor can stay last), returns `Response`, and calls the inner function
//! through the runtime's page cache (`__private::serve_handler`). All HTTP logic lives in the runtime's `PageCache`, the
//! same core `PageCacheLayer` calls.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};

use syn::meta::ParseNestedMeta;
use syn::{Error, Expr, ExprArray, FnArg, ItemFn, Lit, LitBool, LitStr, Path};

use crate::attr::{combine, parse_options, path_text, set_once, Spanned};
use crate::duration::{parse_duration, parse_duration_lit};
use crate::expand::companion_visibility;

const OPTIONS: &str = "ttl, stale, store, key_prefix, vary, query, crate";

#[derive(Default)]
struct PageArgs {
    /// Milliseconds.
    ttl: Option<Spanned<u64>>,
    /// Milliseconds.
    stale: Option<Spanned<u64>>,
    store: Option<Spanned<Expr>>,
    key_prefix: Option<Spanned<LitStr>>,
    vary: Option<Spanned<Vec<LitStr>>>,
    query: Option<Spanned<bool>>,
    krate: Option<Spanned<Path>>,
}

impl PageArgs {
    fn parse(tokens: TokenStream) -> syn::Result<PageArgs> {
        let mut args = PageArgs::default();
        let errors = parse_options(tokens, |meta, name, span| {
            args.parse_option(meta, name, span)
        });
        match errors {
            Some(error) => Err(error),
            None => Ok(args),
        }
    }

    fn parse_option(&mut self, meta: &ParseNestedMeta, name: &str, span: Span) -> syn::Result<()> {
        match name {
            "ttl" => set_once(&mut self.ttl, "ttl", span, || {
                parse_duration_lit("ttl", &meta.value()?.parse::<Lit>()?)
            }),
            "stale" => set_once(&mut self.stale, "stale", span, || {
                let lit: Lit = meta.value()?.parse()?;
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
            "store" => set_once(&mut self.store, "store", span, || meta.value()?.parse()),
            "key_prefix" => set_once(&mut self.key_prefix, "key_prefix", span, || {
                meta.value()?.parse()
            }),
            "vary" => set_once(&mut self.vary, "vary", span, || {
                let list: ExprArray = meta.value()?.parse().map_err(|error: Error| {
                    Error::new(
                        error.span(),
                        "`vary` takes a list of header names, like `vary = [\"Accept-Language\"]`",
                    )
                })?;
                let mut names = Vec::new();
                for element in &list.elems {
                    match element {
                        Expr::Lit(syn::ExprLit { lit: Lit::Str(name), .. }) if is_header_name(&name.value()) => {
                            names.push(name.clone());
                        }
                        Expr::Lit(syn::ExprLit { lit: Lit::Str(name), .. }) => {
                            return Err(Error::new(
                                name.span(),
                                format!("`{}` is not a valid header name", name.value()),
                            ))
                        }
                        other => {
                            return Err(Error::new_spanned(
                                other,
                                "`vary` lists header names as string literals, like `vary = [\"Accept-Language\"]`",
                            ))
                        }
                    }
                }
                Ok(names)
            }),
            "query" => set_once(&mut self.query, "query", span, || {
                let value = meta.value()?;
                let lit: LitBool = value.parse().map_err(|error: Error| {
                    Error::new(error.span(), "invalid `query`: expected `true` or `false`")
                })?;
                Ok(lit.value)
            }),
            "crate" => set_once(&mut self.krate, "crate", span, || {
                let lit: LitStr = meta.value()?.parse()?;
                lit.parse::<Path>().map_err(|_| {
                    Error::new(
                        lit.span(),
                        "`crate` must be a path, like `crate = \"my_cache_runtime\"`",
                    )
                })
            }),
            _ => Err(Error::new_spanned(
                &meta.path,
                format!(
                    "unknown cache_page option `{}`; expected one of: {OPTIONS}",
                    path_text(&meta.path)
                ),
            )),
        }
    }

    fn runtime_path(&self) -> TokenStream {
        match &self.krate {
            Some(path) => path.value.to_token_stream(),
            None => quote!(::cachemacro_runtime),
        }
    }
}

/// RFC 9110 §5.1: a field name is a token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

pub(crate) fn cache_page(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = Error::new(
                Span::call_site(),
                "#[cache_page] applies to an async handler function",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    match expand(attr, &function) {
        Ok(expanded) => expanded,
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #function)
        }
    }
}

/// A handler must be a free `async fn` without generics: its cache is one static next to it.
fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let mut errors = None;
    if sig.asyncness.is_none() {
        combine(
            &mut errors,
            Error::new(
                sig.fn_token.span,
                "#[cache_page] needs an `async fn` (an axum handler)",
            ),
        );
    }
    if let Some(constness) = &sig.constness {
        combine(
            &mut errors,
            Error::new(constness.span, "a `const fn` cannot be an axum handler"),
        );
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        combine(
            &mut errors,
            Error::new_spanned(
                receiver,
                "#[cache_page] applies to free handler functions, not methods; call the method from a handler",
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        combine(
            &mut errors,
            Error::new_spanned(
                &sig.generics,
                "a #[cache_page] handler cannot be generic: its page cache is one static shared by every call",
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        combine(
            &mut errors,
            Error::new_spanned(variadic, "a variadic function cannot be an axum handler"),
        );
    }
    match errors {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn expand(attr: TokenStream, function: &ItemFn) -> syn::Result<TokenStream> {
    // Parse both halves before failing, so that option and signature errors are
    // reported together.
    let args = match (PageArgs::parse(attr), check_signature(function)) {
        (Ok(args), Ok(())) => args,
        (Err(mut first), Err(second)) => {
            first.combine(second);
            return Err(first);
        }
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };
    let rt = args.runtime_path();
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let ident = &sig.ident;
    let where_clause = &sig.generics.where_clause;

    // The handler as written becomes an inner function (its patterns, return type and
    // body untouched, so the user's type errors still point into the user's code); the
    // outer function takes the same extractors, by position, plus the request head.
    let mut render = sig.clone();
    render.ident = syn::Ident::new("__cachemacro_render", Span::call_site());
    let mut outer_args = Vec::new();
    let mut forwarded = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        if let FnArg::Typed(typed) = input {
            let name = quote::format_ident!("__cachemacro_arg{}", index);
            let ty = &typed.ty;
            outer_args.push(quote!(#name: #ty));
            forwarded.push(name);
        }
    }

    let name = ident.to_string();
    let mut cache = match &args.store {
        Some(store) => {
            let store = &store.value;
            quote!(#rt::__private::page_cache_in(
                #store,
                ::core::concat!(::core::module_path!(), "::", #name),
            ))
        }
        None => quote!(#rt::__private::PageCache::new()),
    };
    let prefix = match &args.key_prefix {
        Some(prefix) => prefix.value.to_token_stream(),
        None => quote!(::core::concat!(::core::module_path!(), "::", #name, ":")),
    };
    cache = quote!(#rt::__private::PageCache::key_prefix(#cache, #prefix));
    for (option, setter) in [(&args.ttl, quote!(ttl)), (&args.stale, quote!(stale))] {
        if let Some(millis) = option {
            let millis = millis.value;
            cache = quote!(#rt::__private::PageCache::#setter(#cache, #rt::__private::Duration::from_millis(#millis)));
        }
    }
    if let Some(vary) = &args.vary {
        let names = &vary.value;
        cache = quote!(#rt::__private::PageCache::vary(#cache, [#(#names),*]));
    }
    if let Some(query) = &args.query {
        let query = query.value;
        cache = quote!(#rt::__private::PageCache::query(#cache, #query));
    }

    let block_fn = quote!(#render #block);
    let inner_vis = companion_visibility(vis);
    let module_doc = format!("Page cache companions of the handler [`{ident}`](fn@{ident}), generated by `#[cache_page]`.");
    Ok(quote! {
        #(#attrs)*
        #vis async fn #ident(
            __cachemacro_request: #rt::__private::PageRequest,
            #(#outer_args),*
        ) -> #rt::__private::Response #where_clause {
            #block_fn
            let __cachemacro_cache = #ident::__CACHEMACRO_PAGE.get_or_init(|| #cache);
            #rt::__private::serve_handler(
                __cachemacro_cache,
                __cachemacro_request,
                __cachemacro_render(#(#forwarded),*),
            )
            .await
        }

        #[doc = #module_doc]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            #[doc(hidden)]
            pub(super) static __CACHEMACRO_PAGE: #rt::__private::OnceLock<#rt::__private::PageCache> =
                #rt::__private::OnceLock::new();

            /// Removes the page stored for `uri` (with its host, as requested), with all its
            /// variants; returns whether there was one.
            #[allow(dead_code)]
            #inner_vis fn invalidate(uri: &str) -> bool {
                match __CACHEMACRO_PAGE.get() {
                    #rt::__private::Some(cache) => cache.invalidate(uri),
                    #rt::__private::None => false,
                }
            }

            /// Removes every page this handler stored.
            #[allow(dead_code)]
            #inner_vis fn clear() {
                if let #rt::__private::Some(cache) = __CACHEMACRO_PAGE.get() {
                    cache.clear();
                }
            }

            /// Hits, misses and entries of this handler's page cache.
            #[allow(dead_code)]
            #inner_vis fn stats() -> #rt::__private::CacheStats {
                match __CACHEMACRO_PAGE.get() {
                    #rt::__private::Some(cache) => cache.stats(),
                    #rt::__private::None => <#rt::__private::CacheStats as ::core::default::Default>::default(),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(attr: TokenStream, item: TokenStream) -> String {
        let function: ItemFn = syn::parse2(item).unwrap();
        match expand(attr, &function) {
            Ok(_) => String::new(),
            Err(error) => error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }

    #[test]
    fn options_and_signature_errors_are_reported_together() {
        let errors = error_of(
            quote!(
                ttl = "1m",
                stale = "15x",
                colour = 1,
                vary = ["Accept Language"],
                ttl = "2m"
            ),
            quote!(
                fn handler() -> String {
                    String::new()
                }
            ),
        );
        assert!(errors.contains("invalid `stale`"), "{errors}");
        assert!(
            errors.contains("unknown cache_page option `colour`"),
            "{errors}"
        );
        assert!(
            errors.contains("`Accept Language` is not a valid header name"),
            "{errors}"
        );
        assert!(errors.contains("duplicate `ttl`"), "{errors}");
        assert!(errors.contains("needs an `async fn`"), "{errors}");
    }

    #[test]
    fn generic_handlers_and_methods_are_rejected() {
        let errors = error_of(
            quote!(),
            quote!(
                async fn handler<T>(&self) -> String {
                    String::new()
                }
            ),
        );
        assert!(errors.contains("cannot be generic"), "{errors}");
        assert!(errors.contains("not methods"), "{errors}");
    }

    #[test]
    fn a_valid_handler_expands() {
        let errors = error_of(
            quote!(
                ttl = "15m",
                stale = "5m",
                vary = ["Accept-Language"],
                query = false,
                key_prefix = "books:"
            ),
            quote!(
                async fn book() -> String {
                    String::new()
                }
            ),
        );
        assert_eq!(errors, "");
    }
}
