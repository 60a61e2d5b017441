//! The companions of a cached function (`invalidate`, `clear`, `stats`, and the async
//! `invalidate_async` and `clear_async`): where they go, how visible they are, and the
//! stand-ins emitted in their place when the attribute is wrong.
//!
//! A free function `f` gets a module `f` holding them (a function and a module of one
//! name live in different namespaces); a method `m` gets associated functions
//! `m_invalidate`, `m_clear`, `m_stats` and so on, since an impl block cannot hold a
//! module.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::visit::Visit;
use syn::{FnArg, Ident, Signature, Visibility};

/// One companion function.
pub(crate) struct Companion {
    /// `invalidate`, `clear`, `stats` or an `_async` form; next to a method, prefixed
    /// with its name.
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    /// An `async fn`: the forms that reach a remote store without blocking the executor.
    pub(crate) is_async: bool,
    /// What stands between the name and the body: generics, arguments, return type and
    /// where-clause.
    pub(crate) signature: TokenStream,
    /// The statements of the body; `None` for a stand-in.
    pub(crate) body: Option<TokenStream>,
}

impl Companion {
    /// The same companion with a body that never runs. Emitted next to the
    /// `compile_error!` (a crate with one never runs), so that the user's calls to the
    /// companion still resolve and type-check and the attribute's error stands alone.
    pub(crate) fn stand_in(self) -> Companion {
        Companion { body: None, ..self }
    }

    fn emit(&self, vis: &TokenStream, ident: &Ident) -> TokenStream {
        let Companion { doc, signature, .. } = self;
        let asyncness = self.is_async.then(|| quote!(async));
        match &self.body {
            Some(body) => quote! {
                #[doc = #doc]
                #[allow(dead_code)]
                #vis #asyncness fn #ident #signature {
                    #body
                }
            },
            None => quote! {
                #[doc = #doc]
                #[allow(dead_code, unused_variables)]
                #vis #asyncness fn #ident #signature {
                    ::core::unreachable!()
                }
            },
        }
    }
}

/// Whether the function is a method or an associated function, whose companions must be
/// associated functions too. An associated function that names neither `self` nor
/// `Self` cannot be told from a free one.
pub(crate) fn sits_in_impl(sig: &Signature) -> bool {
    sig.inputs
        .iter()
        .any(|input| matches!(input, FnArg::Receiver(_)))
        || mentions_self_type(sig)
}

fn mentions_self_type(sig: &Signature) -> bool {
    struct FindSelf(bool);
    impl Visit<'_> for FindSelf {
        fn visit_ident(&mut self, ident: &Ident) {
            self.0 |= ident == "Self";
        }
    }
    let mut finder = FindSelf(false);
    finder.visit_signature(sig);
    finder.0
}

/// The module `function` holding `state` (the static the companions reach) and the
/// companions, documented by `doc`.
pub(crate) fn companion_module(
    vis: &Visibility,
    function: &Ident,
    doc: &str,
    state: TokenStream,
    companions: impl IntoIterator<Item = Companion>,
) -> TokenStream {
    let inner_vis = companion_visibility(vis);
    let companions = companions
        .into_iter()
        .map(|companion| companion.emit(&inner_vis, &format_ident!("{}", companion.name)));
    quote! {
        #[doc = #doc]
        #vis mod #function {
            #[allow(unused_imports)]
            use super::*;

            #state
            #(#companions)*
        }
    }
}

/// `state` and the companions as associated functions named `<method>_<companion>`.
pub(crate) fn associated_companions(
    vis: &Visibility,
    method: &Ident,
    state: TokenStream,
    companions: impl IntoIterator<Item = Companion>,
) -> TokenStream {
    let vis = vis.to_token_stream();
    let companions = companions
        .into_iter()
        .map(|companion| companion.emit(&vis, &format_ident!("{}_{}", method, companion.name)));
    quote! {
        #state
        #(#companions)*
    }
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

#[cfg(test)]
mod tests;
