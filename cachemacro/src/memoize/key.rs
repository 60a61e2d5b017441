//! Which arguments form the cache key, and the expression that builds it.
//!
//! The key owns its parts: a by-value argument is cloned, a reference is turned into its
//! owned form (`&str` -> `String`, `&[T]` -> `Vec<T>`, `&T` -> `T`) through `ToOwned`.
//! The default key is first written borrowed, as a tuple of references to the arguments,
//! so that a hit needs no allocation; the owned key is derived from that tuple, by the
//! function and by its `invalidate` companion alike, so they never build different keys.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Error, FnArg, GenericParam, Pat, Type};

use super::attr::MemoizeArgs;
use super::signature::{bindings, is_impl_trait, mentions, FnShape};
use crate::shared::errors::Errors;

pub(crate) struct KeyPlan {
    /// Builds the owned key from the arguments in scope.
    pub(crate) expr: TokenStream,
    /// For the default key: the key borrowed from the arguments (a [`KeyRef`] tuple such
    /// as `(&str, &u32)`), which the hit path probes with before any allocation. `expr`
    /// is then `KeyRef::to_key` of it, so the two cannot disagree.
    ///
    /// [`KeyRef`]: https://docs.rs/cachemacro-runtime/latest/cachemacro_runtime/trait.KeyRef.html
    pub(crate) borrowed: Option<TokenStream>,
    /// The same key, built inside a companion, where the receiver is always `&self`.
    pub(crate) companion_expr: TokenStream,
    /// Whether the receiver is part of the key (the companion then takes `&self`).
    pub(crate) uses_receiver: bool,
    /// The arguments the `invalidate` companion takes, as `pattern: Type`.
    pub(crate) companion_args: Vec<TokenStream>,
}

impl KeyPlan {
    /// The key of `shape` under `args`, with what cannot be part of it kept in `errors`.
    /// The plan is returned whatever was wrong, without the parts that were: the stand-in
    /// companions of a failed expansion take the arguments it names.
    pub(crate) fn derive(
        shape: &FnShape,
        args: &MemoizeArgs,
        rt: &TokenStream,
        errors: &mut Errors,
    ) -> KeyPlan {
        check_ignored_names_exist(shape, args, errors);
        match &args.key {
            Some(key) => custom_key(shape, &key.value, rt),
            None => argument_key(shape, args, rt, errors),
        }
    }
}

fn check_ignored_names_exist(shape: &FnShape, args: &MemoizeArgs, errors: &mut Errors) {
    let Some(ignore) = &args.ignore else { return };
    let mut known: Vec<String> = shape
        .args
        .iter()
        .filter_map(|arg| arg.ident.map(ToString::to_string))
        .collect();
    if shape.receiver.is_some() {
        known.insert(0, "self".to_owned());
    }
    for name in &ignore.value {
        if !known.iter().any(|known| name == known) {
            let listed = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            errors.push(Error::new(
                name.span(),
                format!("`ignore` names `{name}`, which is not an argument of `{}`; its arguments are: {listed}", shape.sig.ident),
            ));
        }
    }
}

/// The default key: the receiver and every argument that is not ignored.
fn argument_key(
    shape: &FnShape,
    args: &MemoizeArgs,
    rt: &TokenStream,
    errors: &mut Errors,
) -> KeyPlan {
    let mut parts = Vec::new();
    let mut companion_parts = Vec::new();
    let mut companion_args = Vec::new();
    let uses_receiver = shape.receiver.is_some() && !args.ignores("self");
    if let Some(receiver) = shape.receiver.filter(|_| uses_receiver) {
        let span = receiver.self_token.span;
        let rt = respan(rt, span);
        // The companions take `&self` whatever the method's receiver is.
        let companion_part = quote_spanned!(span=> #rt::__private::self_key(self));
        let part = match (&receiver.reference, &receiver.mutability) {
            (Some(_), None) => companion_part.clone(),
            (Some(_), Some(_)) => quote_spanned!(span=> #rt::__private::self_key(&*self)),
            (None, _) => quote_spanned!(span=> #rt::__private::self_key(&self)),
        };
        parts.push(part);
        companion_parts.push(companion_part);
    }
    for arg in &shape.args {
        let Some(ident) = arg.ident else {
            if is_wildcard(arg.pat) {
                continue; // `_` cannot influence the result, so it is not part of the key.
            }
            errors.push(Error::new_spanned(
                arg.pat,
                "a destructuring pattern cannot be part of the key; name the argument, or give `key = ..` over its bindings",
            ));
            continue;
        };
        if args.ignores(&ident.to_string()) {
            continue;
        }
        if is_impl_trait(arg.ty) {
            errors.push(Error::new_spanned(
                arg.ty,
                format!("`{ident}` has an `impl Trait` type, which cannot be stored in a cache key; add `ignore({ident})` or choose the key with `key = ..`"),
            ));
            continue;
        }
        // Spanned on the argument's type, runtime path included, so that a type that
        // cannot be a key part is reported on the argument, not on the attribute.
        let span = arg.ty.span();
        let rt = respan(rt, span);
        let part = match arg.ty {
            Type::Reference(_) => {
                quote_spanned!(span=> #rt::__private::borrowed_key_part(&*#ident))
            }
            _ => quote_spanned!(span=> #rt::__private::key_part(&#ident)),
            // Each part is a reference; the owned key is built from them only on a miss.
        };
        parts.push(part.clone());
        companion_parts.push(part);
        companion_args.push(companion_arg(arg.pat, arg.ty));
    }
    let key_types = shape.args.iter().filter(|arg| {
        arg.ident
            .is_some_and(|ident| !args.ignores(&ident.to_string()))
    });
    let instantiation =
        instantiation_parts(shape, key_types.map(|arg| arg.ty.to_token_stream()), rt);
    parts.extend(instantiation.iter().cloned());
    companion_parts.extend(instantiation);
    let borrowed = quote!((#(#parts,)*));
    KeyPlan {
        expr: quote!(#rt::__private::KeyRef::to_key(&#borrowed)),
        companion_expr: quote!(#rt::__private::KeyRef::to_key(&(#(#companion_parts,)*))),
        borrowed: Some(borrowed),
        uses_receiver,
        companion_args,
    }
}

/// `key = expr`: the companion takes the arguments the expression mentions.
fn custom_key(shape: &FnShape, key: &syn::Expr, rt: &TokenStream) -> KeyPlan {
    let tokens = key.to_token_stream();
    let companion_args = shape
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed)
                if bindings(&typed.pat)
                    .iter()
                    .any(|name| mentions(tokens.clone(), &name.to_string())) =>
            {
                Some(companion_arg(&typed.pat, &typed.ty))
            }
            _ => None,
        })
        .collect();
    // The key expression's type is not known here: only the return type can be relied on
    // to tell instantiations apart.
    let instantiation = instantiation_parts(shape, std::iter::empty(), rt);
    let expr = if instantiation.is_empty() {
        quote_spanned!(key.span()=> { #key })
    } else {
        quote_spanned!(key.span()=> ({ #key }, #(#instantiation,)*))
    };
    KeyPlan {
        companion_expr: expr.clone(),
        expr,
        borrowed: None,
        uses_receiver: shape.receiver.is_some() && mentions(tokens, "self"),
        companion_args,
    }
}

/// Key parts for the function's generic parameters that the key and return types do not
/// already tell apart. Every instantiation shares the one `static` slot, whose caches are
/// told apart by their `Memoized<K, V, S>` type alone; without these parts,
/// `size_in_bytes::<u8>(4)` and `size_in_bytes::<u64>(4)` would share one entry.
///
/// A const parameter is keyed by its value, a type parameter by its `type_name`. That
/// name is not guaranteed unique (two versions of one crate can print the same path), but
/// unlike `TypeId` it needs no `T: 'static`, which would reject generic functions that
/// compile today.
fn instantiation_parts(
    shape: &FnShape,
    key_types: impl Iterator<Item = TokenStream>,
    rt: &TokenStream,
) -> Vec<TokenStream> {
    let covering: Vec<TokenStream> = key_types.chain([shape.output.to_token_stream()]).collect();
    shape
        .sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Const(constant) => {
                let ident = &constant.ident;
                Some(quote!(#rt::__private::key_part(&#ident)))
            }
            GenericParam::Type(ty) => {
                let ident = &ty.ident;
                let covered = covering
                    .iter()
                    .any(|tokens| mentions(tokens.clone(), &ident.to_string()));
                (!covered).then(|| quote!(#rt::__private::type_name::<#ident>()))
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect()
}

/// `tokens` with every token given `span` (`tokens` is the runtime path: no groups).
pub(crate) fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

fn is_wildcard(pat: &Pat) -> bool {
    matches!(pat, Pat::Wild(_))
}

/// `pat: ty` for a companion function, without `mut` (the companion never mutates).
fn companion_arg(pat: &Pat, ty: &Type) -> TokenStream {
    let mut pat = pat.clone();
    strip_mut(&mut pat);
    quote!(#pat: #ty)
}

fn strip_mut(pat: &mut Pat) {
    use syn::visit_mut::VisitMut;
    struct StripMut;
    impl VisitMut for StripMut {
        fn visit_pat_ident_mut(&mut self, binding: &mut syn::PatIdent) {
            binding.mutability = None;
            syn::visit_mut::visit_pat_ident_mut(self, binding);
        }
    }
    StripMut.visit_pat_mut(pat);
}
