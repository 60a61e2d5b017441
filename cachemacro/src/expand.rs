//! `#[memoize]`: parse, validate, expand.
//!
//! The signature is re-emitted as written and the body is wrapped, never rewritten, so the
//! user's own type errors still point into the user's code. On any error the original
//! function is emitted unchanged next to the `compile_error!`, so one mistake does not
//! cascade into errors at every call site and IDEs keep working.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Item, ItemFn, ReturnType, Visibility};

use crate::attr::MemoizeArgs;
use crate::key::{respan, KeyPlan};
use crate::signature::FnShape;

pub(crate) fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = not_a_function(&item).to_compile_error();
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

/// The error for an item that is not a function with a body, on its kind and name
/// (`struct Lookup`) rather than on the attribute.
fn not_a_function(item: &TokenStream) -> syn::Error {
    const ACCEPTED: &str = "#[memoize] applies to a function or method with a body";
    let (found, head) = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(item)) => ("a struct", named(item.struct_token, &item.ident)),
        Ok(Item::Enum(item)) => ("an enum", named(item.enum_token, &item.ident)),
        Ok(Item::Union(item)) => ("a union", named(item.union_token, &item.ident)),
        Ok(Item::Trait(item)) => (
            "a trait; put it on the methods that have a body",
            named(item.trait_token, &item.ident),
        ),
        Ok(Item::Impl(item)) => (
            "an impl block; put it on the methods inside",
            item.impl_token.into_token_stream(),
        ),
        Ok(Item::Mod(item)) => ("a module", named(item.mod_token, &item.ident)),
        Ok(Item::Const(item)) => ("a constant", named(item.const_token, &item.ident)),
        Ok(Item::Static(item)) => ("a static", named(item.static_token, &item.ident)),
        Ok(Item::Type(item)) => ("a type alias", named(item.type_token, &item.ident)),
        _ => return syn::Error::new(Span::call_site(), ACCEPTED),
    };
    syn::Error::new_spanned(head, format!("{ACCEPTED}, not to {found}"))
}

fn named(keyword: impl ToTokens, ident: &syn::Ident) -> TokenStream {
    quote!(#keyword #ident)
}

fn expand(attr: TokenStream, function: &ItemFn) -> syn::Result<TokenStream> {
    // Parse both halves before failing, so that option and signature errors are
    // reported together.
    let (args, shape) = match (MemoizeArgs::parse(attr), FnShape::analyze(&function.sig)) {
        (Ok(args), Ok(shape)) => (args, shape),
        (Err(mut first), Err(second)) => {
            first.combine(second);
            return Err(first);
        }
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };
    let rt = args.runtime_path().into_token_stream();
    let key = KeyPlan::derive(&shape, &args, &rt)?;
    let slot = if shape.in_impl {
        let slot_fn = slot_fn_name(&shape);
        quote!(Self::#slot_fn())
    } else {
        let module = &shape.sig.ident;
        quote!(#module::__CACHEMACRO_SLOT)
    };
    let memoized = memoized_fn(function, &shape, &args, &key, &slot, &rt);
    let companions = if shape.in_impl {
        method_companions(function, &shape, &key, &rt)
    } else {
        module_companions(function, &shape, &key, &rt)
    };
    Ok(quote!(#memoized #companions))
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
        None => {
            let function_name = sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #function_name))
        }
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
                let millis = fresh.value.saturating_add(stale);
                quote!(.ttl(#rt::__private::Duration::from_millis(#millis)))
            });
            let tti = args.tti.as_ref().map(|tti| {
                let millis = tti.value;
                quote!(.tti(#rt::__private::Duration::from_millis(#millis)))
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
            let fresh = fresh.value;
            quote! {
                #rt::__private::StalePolicy::new(#policy, #rt::__private::Duration::from_millis(#fresh))
            }
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
            quote!(#rt::__private::Some(#rt::__private::Duration::from_millis(#millis)))
        }
        None => quote!(#rt::__private::None),
    }
}

/// A free function `f` gets a module `f` holding its cache slot and companions.
fn module_companions(
    function: &ItemFn,
    shape: &FnShape,
    key: &KeyPlan,
    rt: &TokenStream,
) -> TokenStream {
    let vis = &function.vis;
    let inner_vis = companion_visibility(vis);
    let ident = &shape.sig.ident;
    let where_clause = &shape.sig.generics.where_clause;
    let generics = &shape.sig.generics;
    let companion_args = &key.companion_args;
    let key_expr = &key.companion_expr;
    let module_doc =
        format!("Cache companions of [`{ident}`](fn@{ident}), generated by `#[memoize]`.");
    quote! {
        #[doc = #module_doc]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            #[doc(hidden)]
            pub(super) static __CACHEMACRO_SLOT: #rt::__private::CacheSlot = #rt::__private::CacheSlot::new();

            /// Removes the cached result for these arguments; returns whether there was one.
            #[allow(dead_code)]
            #inner_vis fn invalidate #generics (#(#companion_args),*) -> bool #where_clause {
                let __cachemacro_key = #key_expr;
                __CACHEMACRO_SLOT.invalidate(&__cachemacro_key)
            }

            /// Removes every cached result of this function.
            #[allow(dead_code)]
            #inner_vis fn clear() {
                __CACHEMACRO_SLOT.clear()
            }

            /// Hits, misses, entries and evictions of this function's cache.
            #[allow(dead_code)]
            #inner_vis fn stats() -> #rt::__private::CacheStats {
                __CACHEMACRO_SLOT.stats()
            }
        }
    }
}

/// A method `m` gets associated functions `m_invalidate`, `m_clear` and `m_stats`.
fn method_companions(
    function: &ItemFn,
    shape: &FnShape,
    key: &KeyPlan,
    rt: &TokenStream,
) -> TokenStream {
    let vis = &function.vis;
    let ident = &shape.sig.ident;
    let slot_fn = slot_fn_name(shape);
    let invalidate = format_ident!("{}_invalidate", ident);
    let clear = format_ident!("{}_clear", ident);
    let stats = format_ident!("{}_stats", ident);
    let generics = &shape.sig.generics;
    let where_clause = &shape.sig.generics.where_clause;
    let receiver = key.uses_receiver.then(|| quote!(&self,));
    let companion_args = &key.companion_args;
    let key_expr = &key.companion_expr;
    quote! {
        #[doc(hidden)]
        fn #slot_fn() -> &'static #rt::__private::CacheSlot {
            static __CACHEMACRO_SLOT: #rt::__private::CacheSlot = #rt::__private::CacheSlot::new();
            &__CACHEMACRO_SLOT
        }

        /// Removes the cached result of the memoized method for these arguments; returns
        /// whether there was one.
        #[allow(dead_code)]
        #vis fn #invalidate #generics (#receiver #(#companion_args),*) -> bool #where_clause {
            let __cachemacro_key = #key_expr;
            Self::#slot_fn().invalidate(&__cachemacro_key)
        }

        /// Removes every cached result of the memoized method.
        #[allow(dead_code)]
        #vis fn #clear() {
            Self::#slot_fn().clear()
        }

        /// Hits, misses, entries and evictions of the memoized method's cache.
        #[allow(dead_code)]
        #vis fn #stats() -> #rt::__private::CacheStats {
            Self::#slot_fn().stats()
        }
    }
}

fn slot_fn_name(shape: &FnShape) -> syn::Ident {
    format_ident!("__cachemacro_{}_slot", shape.sig.ident)
}

/// The companions sit one module deeper than the function, so each visibility is
/// widened by one level to stay reachable from everywhere the function is.
pub(crate) fn companion_visibility(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Public(_) => quote!(pub),
        Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            if path.is_ident("super") {
                quote!(pub(in super::super))
            } else if path.is_ident("self") {
                quote!(pub(super))
            } else if path.segments.first().is_some_and(|s| s.ident == "crate")
                || path.leading_colon.is_some()
            {
                quote!(#vis)
            } else {
                quote!(pub(crate))
            }
        }
    }
}
