//! The expansion of a valid `#[memoize]`: the memoized function and its companions.
//!
//! The signature is re-emitted as written and the body is wrapped, never rewritten, so the
//! user's own type errors still point into the user's code.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use super::attr::MemoizeArgs;
use super::key::{respan, KeyPlan};
use super::signature::FnShape;
use crate::shared::companions::{associated_companions, companion_module, Companion};
use crate::shared::duration::duration_tokens;
use crate::shared::options::qualified_name;

/// The memoized function, its cache slot and its companions.
pub(super) fn memoized(
    function: &ItemFn,
    shape: &FnShape,
    args: &MemoizeArgs,
    key: &KeyPlan,
    rt: &TokenStream,
) -> TokenStream {
    // The slot as the function reaches it, the state that holds it, and the slot as the
    // companions reach it (from inside the module, for a free function).
    let (slot, state, companion_slot) = if shape.in_impl {
        let slot_fn = slot_fn_name(shape);
        let state = quote! {
            #[doc(hidden)]
            fn #slot_fn() -> &'static #rt::__private::CacheSlot {
                static __CACHEMACRO_SLOT: #rt::__private::CacheSlot = #rt::__private::CacheSlot::new();
                &__CACHEMACRO_SLOT
            }
        };
        (quote!(Self::#slot_fn()), state, quote!(Self::#slot_fn()))
    } else {
        let module = &shape.sig.ident;
        let state = quote! {
            #[doc(hidden)]
            pub(super) static __CACHEMACRO_SLOT: #rt::__private::CacheSlot = #rt::__private::CacheSlot::new();
        };
        (
            quote!(#module::__CACHEMACRO_SLOT),
            state,
            quote!(__CACHEMACRO_SLOT),
        )
    };
    let memoized = memoized_fn(function, shape, args, key, &slot, rt);
    let companions = place_companions(
        function,
        shape,
        state,
        companions(shape, key, &companion_slot, rt),
    );
    quote!(#memoized #companions)
}

/// Stand-ins for the companions of a function the attribute failed on, taking the
/// arguments `key` names.
pub(super) fn stand_in_companions(
    function: &ItemFn,
    shape: &FnShape,
    key: &KeyPlan,
    rt: &TokenStream,
) -> TokenStream {
    let companions = companions(shape, key, &TokenStream::new(), rt);
    place_companions(
        function,
        shape,
        TokenStream::new(),
        companions.into_iter().map(Companion::stand_in),
    )
}

fn memoized_fn(
    function: &ItemFn,
    shape: &FnShape,
    args: &MemoizeArgs,
    key: &KeyPlan,
    slot: &TokenStream,
    rt: &TokenStream,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let output = &shape.output;
    let key_expr = &key.expr;
    let name = match &args.name {
        Some(name) => name.value.to_token_stream(),
        None => qualified_name(&sig.ident),
    };
    // With `stale`, the store keeps entries for ttl + stale; the policy stamps them
    // fresh for ttl.
    let stale = args.stale.as_ref().map_or(0, |stale| stale.value);
    let ttl = millis_option(
        args.ttl.as_ref().map(|ttl| ttl.value.saturating_add(stale)),
        rt,
    );
    let store = match &args.store {
        Some(store) => store.value.to_token_stream(),
        None => {
            // The default store, configured by the options that exist for it.
            let capacity = args.capacity.as_ref().map(|capacity| {
                let entries = capacity.value;
                quote!(.capacity(#entries))
            });
            let store_ttl = args.ttl.as_ref().map(|fresh| {
                let ttl = duration_tokens(rt, fresh.value.saturating_add(stale));
                quote!(.ttl(#ttl))
            });
            let tti = args.tti.as_ref().map(|tti| {
                let tti = duration_tokens(rt, tti.value);
                quote!(.tti(#tti))
            });
            let max_bytes = args.max_bytes.as_ref().map(|max| {
                let bytes = max.value;
                quote!(.max_bytes(#bytes))
            });
            let weigher = args.weigher.as_ref().map(|weigher| {
                let weigher = &weigher.value;
                quote!(.weigher(#weigher))
            });
            quote! {
                #rt::__private::MemoryStore::builder()
                    #capacity #store_ttl #tti #max_bytes #weigher
                    .build()
            }
        }
    };
    let policy = value_policy(shape, args, rt);
    let policy = match (&args.stale, &args.ttl) {
        (Some(_), Some(fresh)) => {
            let fresh = duration_tokens(rt, fresh.value);
            quote!(#rt::__private::StalePolicy::new(#policy, #fresh))
        }
        _ => policy,
    };
    let call = if sig.asyncness.is_some() {
        // Spanned on the declared return type, so that rustc's "return type inferred to be
        // `T` here" points at it.
        let output_span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => Span::call_site(),
        };
        let rt_here = respan(rt, output_span);
        let pin_output = quote_spanned! {output_span=>
            return #rt_here::__private::unreachable_output::<#output>();
        };
        quote! {
            #rt::__private::Memoized::get_or_compute_async(
                __cachemacro_cache,
                __cachemacro_key,
                #rt::__private::async_body::<#output, _>(async move {
                    // An async block cannot declare its output type, and rustc does not
                    // infer it from `async_body`'s bound: this never-taken `return` fixes
                    // it before the body is checked, so a `return` or tail expression of
                    // the wrong type is reported in the user's body, not on the attribute.
                    if false {
                        #pin_output
                    }
                    #block
                }),
                &__cachemacro_policy,
            )
            .await
        }
    } else {
        quote! {
            #rt::__private::Memoized::get_or_compute(
                __cachemacro_cache,
                __cachemacro_key,
                move || -> #output #block,
                &__cachemacro_policy,
            )
        }
    };
    let key = match &key.borrowed {
        // The hit path: probe with references to the arguments, and build (allocate) the
        // owned key only on a miss. The borrow ends before the body takes the arguments.
        Some(borrowed) => quote! {
            let __cachemacro_key = {
                let __cachemacro_key_ref = #borrowed;
                if let #rt::__private::Some(__cachemacro_hit) =
                    #rt::__private::Memoized::lookup_borrowed(
                        __cachemacro_cache,
                        &__cachemacro_key_ref,
                        &__cachemacro_policy,
                    )
                {
                    return __cachemacro_hit;
                }
                #rt::__private::KeyRef::to_key(&__cachemacro_key_ref)
            };
        },
        None => quote!(let __cachemacro_key = #key_expr;),
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let __cachemacro_cache = #slot.get_or_init(|| {
                #rt::__private::Memoized::new(#name, #store, #ttl)
            });
            let __cachemacro_policy = #policy;
            #key
            #call
        }
    }
}

/// Which results are stored: for `Result<T, E>` only `Ok(T)` (unless `cache_err`), and
/// only those `cache_if` accepts.
fn value_policy(shape: &FnShape, args: &MemoizeArgs, rt: &TokenStream) -> TokenStream {
    let output = &shape.output;
    let accept = match &args.cache_if {
        Some(cache_if) => {
            let predicate = &cache_if.value;
            quote_spanned! {cache_if.span=>
                // Through a function, not `(closure)(result)`: clippy would flag the
                // user's closure literal as a redundant closure call.
                if !#rt::__private::cache_if(&(#predicate), __cachemacro_result) {
                    return #rt::__private::None;
                }
            }
        }
        None => quote!(),
    };
    let cache_err = args.cache_err.as_ref().is_some_and(|option| option.value);
    match &shape.result_ok {
        Some(ok) if !cache_err => quote! {
            #rt::__private::PolicyFns(
                |__cachemacro_result: &#output| -> #rt::__private::Option<#ok> {
                    #accept
                    match __cachemacro_result {
                        #rt::__private::Ok(__cachemacro_value) => {
                            #rt::__private::Some(#rt::__private::Clone::clone(__cachemacro_value))
                        }
                        #rt::__private::Err(_) => #rt::__private::None,
                    }
                },
                |__cachemacro_value: #ok| -> #output { #rt::__private::Ok(__cachemacro_value) },
            )
        },
        _ => quote! {
            #rt::__private::PolicyFns(
                |__cachemacro_result: &#output| -> #rt::__private::Option<#output> {
                    #accept
                    #rt::__private::Some(#rt::__private::Clone::clone(__cachemacro_result))
                },
                |__cachemacro_value: #output| -> #output { __cachemacro_value },
            )
        },
    }
}

fn millis_option(millis: Option<u64>, rt: &TokenStream) -> TokenStream {
    match millis {
        Some(millis) => {
            let duration = duration_tokens(rt, millis);
            quote!(#rt::__private::Some(#duration))
        }
        None => quote!(#rt::__private::None),
    }
}

/// `invalidate`, `clear` and `stats`, each async form next to its sync one, reaching the
/// cache through `slot`.
fn companions(
    shape: &FnShape,
    key: &KeyPlan,
    slot: &TokenStream,
    rt: &TokenStream,
) -> [Companion; 5] {
    let generics = &shape.sig.generics;
    let where_clause = &shape.sig.generics.where_clause;
    let receiver = key.uses_receiver.then(|| quote!(&self,));
    let companion_args = &key.companion_args;
    let key_expr = &key.companion_expr;
    let [invalidate, invalidate_async, clear, clear_async, stats] = if shape.in_impl {
        [
            "Removes the cached result of the memoized method for these arguments; returns whether there was one.",
            "Removes the cached result of the memoized method for these arguments through the store's async removal; returns whether there was one. Use it in async code, where the sync form would block the executor for a round trip to a remote store.",
            "Removes every cached result of the memoized method.",
            "Removes every cached result of the memoized method through the store's async clear. Use it in async code, where the sync form would block the executor for a round trip to a remote store.",
            "Hits, misses, entries and evictions of the memoized method's cache.",
        ]
    } else {
        [
            "Removes the cached result for these arguments; returns whether there was one.",
            "Removes the cached result for these arguments through the store's async removal; returns whether there was one. Use it in async code, where `invalidate` would block the executor for a round trip to a remote store.",
            "Removes every cached result of this function.",
            "Removes every cached result of this function through the store's async clear. Use it in async code, where `clear` would block the executor for a round trip to a remote store.",
            "Hits, misses, entries and evictions of this function's cache.",
        ]
    };
    let invalidate_signature =
        quote!(#generics (#receiver #(#companion_args),*) -> bool #where_clause);
    [
        Companion {
            name: "invalidate",
            doc: invalidate,
            is_async: false,
            signature: invalidate_signature.clone(),
            body: Some(quote! {
                let __cachemacro_key = #key_expr;
                #slot.invalidate(&__cachemacro_key)
            }),
        },
        Companion {
            name: "invalidate_async",
            doc: invalidate_async,
            is_async: true,
            signature: invalidate_signature,
            body: Some(quote! {
                let __cachemacro_key = #key_expr;
                #slot.invalidate_async(&__cachemacro_key).await
            }),
        },
        Companion {
            name: "clear",
            doc: clear,
            is_async: false,
            signature: quote!(()),
            body: Some(quote!(#slot.clear())),
        },
        Companion {
            name: "clear_async",
            doc: clear_async,
            is_async: true,
            signature: quote!(()),
            body: Some(quote!(#slot.clear_async().await)),
        },
        Companion {
            name: "stats",
            doc: stats,
            is_async: false,
            signature: quote!(() -> #rt::__private::CacheStats),
            body: Some(quote!(#slot.stats())),
        },
    ]
}

/// A free function `f` gets a module `f` holding `state` and the companions; a method `m`
/// gets them as associated functions `m_invalidate`, `m_invalidate_async`, `m_clear`,
/// `m_clear_async` and `m_stats`.
fn place_companions(
    function: &ItemFn,
    shape: &FnShape,
    state: TokenStream,
    companions: impl IntoIterator<Item = Companion>,
) -> TokenStream {
    let ident = &shape.sig.ident;
    if shape.in_impl {
        associated_companions(&function.vis, ident, state, companions)
    } else {
        let doc =
            format!("Cache companions of [`{ident}`](fn@{ident}), generated by `#[memoize]`.");
        companion_module(&function.vis, ident, &doc, state, companions)
    }
}

fn slot_fn_name(shape: &FnShape) -> syn::Ident {
    format_ident!("__cachemacro_{}_slot", shape.sig.ident)
}
