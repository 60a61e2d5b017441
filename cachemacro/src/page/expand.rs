//! The expansion of a valid `#[cache_page]`: the handler and its companions.
//!
//! The handler as written becomes an inner function of the same shape; the outer
//! function keeps the name, visibility and attributes, takes the same extractors plus
//! one hidden extractor in front (the page found for the request, or its head on a miss,
//! taken from the request parts so the body extractor can stay last), returns
//! `Response`, and calls the inner function through the runtime's page cache
//! (`__private::serve_handler`) once every extractor let the request through. All HTTP logic lives in
//! the runtime's `PageCache`, the same core `PageCacheLayer` calls.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::{FnArg, Ident, ItemFn};

use super::attr::PageArgs;
use crate::shared::companions::{companion_module, companion_visibility, Companion};
use crate::shared::duration::duration_tokens;
use crate::shared::options::qualified_name;

/// The cached handler, its page cache and its companions.
pub(crate) fn cached_handler(function: &ItemFn, args: &PageArgs, rt: &TokenStream) -> TokenStream {
    let (attrs, vis, sig, block) = (
        &function.attrs,
        &function.vis,
        &function.sig,
        &function.block,
    );
    let ident = &sig.ident;
    let where_clause = &sig.generics.where_clause;

    // The handler as written becomes an inner function (its patterns, return type and
    // body untouched, so the user's type errors still point into the user's code); the
    // outer function takes the same extractors, by position, plus the request head.
    let mut render = sig.clone();
    render.ident = Ident::new("__cachemacro_render", Span::call_site());
    let mut outer_args = Vec::new();
    let mut forwarded = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        if let FnArg::Typed(typed) = input {
            let name = format_ident!("__cachemacro_arg{}", index);
            let ty = &typed.ty;
            outer_args.push(quote!(#name: #ty));
            forwarded.push(name);
        }
    }
    let cache = page_cache(ident, args, rt);
    // The hidden extractor reaches the cache through a type: axum builds an extractor
    // from the request alone. The impl sits beside the handler, so that a `store = ..`
    // expression resolves where the user wrote it.
    let handler_vis = companion_visibility(vis);
    let state = quote! {
        #[doc(hidden)]
        pub(super) static __CACHEMACRO_PAGE: #rt::__private::OnceLock<#rt::__private::PageCache> =
            #rt::__private::OnceLock::new();

        #[doc(hidden)]
        #handler_vis struct __CachemacroHandler;
    };
    let companions = companion_module(vis, ident, &module_doc(ident), state, companions(rt));
    quote! {
        #(#attrs)*
        #vis async fn #ident(
            __cachemacro_request: #rt::__private::PageRequest<#ident::__CachemacroHandler>,
            #(#outer_args),*
        ) -> #rt::__private::Response #where_clause {
            #render #block
            #rt::__private::serve_handler(
                __cachemacro_request,
                move || __cachemacro_render(#(#forwarded),*),
            )
            .await
        }

        impl #rt::__private::HandlerPageCache for #ident::__CachemacroHandler {
            fn page_cache() -> &'static #rt::__private::PageCache {
                #ident::__CACHEMACRO_PAGE.get_or_init(|| #cache)
            }
        }

        #companions
    }
}

/// Stand-ins for the companions of a handler the attribute failed on.
pub(crate) fn stand_in_companions(function: &ItemFn, rt: &TokenStream) -> TokenStream {
    let ident = &function.sig.ident;
    let stand_ins = companions(rt).into_iter().map(Companion::stand_in);
    companion_module(
        &function.vis,
        ident,
        &module_doc(ident),
        TokenStream::new(),
        stand_ins,
    )
}

/// The handler's `PageCache`, configured by the options.
fn page_cache(ident: &Ident, args: &PageArgs, rt: &TokenStream) -> TokenStream {
    let name = qualified_name(ident);
    let mut cache = match &args.store {
        Some(store) => {
            let store = &store.value;
            quote!(#rt::__private::page_cache_in(#store, #name))
        }
        None => quote!(#rt::__private::PageCache::new()),
    };
    let prefix = match &args.key_prefix {
        Some(prefix) => prefix.value.to_token_stream(),
        None => quote!(::core::concat!(#name, ":")),
    };
    cache = quote!(#rt::__private::PageCache::key_prefix(#cache, #prefix));
    for (option, setter) in [(&args.ttl, quote!(ttl)), (&args.stale, quote!(stale))] {
        if let Some(millis) = option {
            let duration = duration_tokens(rt, millis.value);
            cache = quote!(#rt::__private::PageCache::#setter(#cache, #duration));
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
    if let Some(patterns) = &args.ignore_query {
        let patterns = &patterns.value;
        cache = quote!(#rt::__private::PageCache::ignore_query(#cache, [#(#patterns),*]));
    }
    cache
}

fn module_doc(ident: &Ident) -> String {
    format!(
        "Page cache companions of the handler [`{ident}`](fn@{ident}), generated by `#[cache_page]`."
    )
}

/// `invalidate`, `clear` and `stats` of the page cache in `__CACHEMACRO_PAGE`, each async
/// form next to its sync one; the cache is empty until the handler's first request.
fn companions(rt: &TokenStream) -> [Companion; 5] {
    [
        Companion {
            name: "invalidate",
            doc: "Removes the page stored for `uri` (with its host, as requested), with all its variants; returns whether there was one.",
            is_async: false,
            signature: quote!((uri: &str) -> bool),
            body: Some(quote! {
                match __CACHEMACRO_PAGE.get() {
                    #rt::__private::Some(cache) => cache.invalidate(uri),
                    #rt::__private::None => false,
                }
            }),
        },
        Companion {
            name: "invalidate_async",
            doc: "Removes the page stored for `uri` (with its host, as requested), with all its variants, through the store's async removal; returns whether there was one. Use it in async code, where `invalidate` would block the executor for a round trip to a remote store.",
            is_async: true,
            signature: quote!((uri: &str) -> bool),
            body: Some(quote! {
                match __CACHEMACRO_PAGE.get() {
                    #rt::__private::Some(cache) => cache.invalidate_async(uri).await,
                    #rt::__private::None => false,
                }
            }),
        },
        Companion {
            name: "clear",
            doc: "Removes every page this handler stored.",
            is_async: false,
            signature: quote!(()),
            body: Some(quote! {
                if let #rt::__private::Some(cache) = __CACHEMACRO_PAGE.get() {
                    cache.clear();
                }
            }),
        },
        Companion {
            name: "clear_async",
            doc: "Removes every page this handler stored, through the store's async clear. Use it in async code, where `clear` would block the executor for a round trip to a remote store.",
            is_async: true,
            signature: quote!(()),
            body: Some(quote! {
                if let #rt::__private::Some(cache) = __CACHEMACRO_PAGE.get() {
                    cache.clear_async().await;
                }
            }),
        },
        Companion {
            name: "stats",
            doc: "Hits, misses and entries of this handler's page cache.",
            is_async: false,
            signature: quote!(() -> #rt::__private::CacheStats),
            body: Some(quote! {
                match __CACHEMACRO_PAGE.get() {
                    #rt::__private::Some(cache) => cache.stats(),
                    #rt::__private::None => <#rt::__private::CacheStats as ::core::default::Default>::default(),
                }
            }),
        },
    ]
}
