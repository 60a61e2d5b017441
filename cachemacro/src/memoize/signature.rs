//! What the macro needs to know about the function: receiver, arguments, async-ness and
//! return type, and which signatures it cannot memoize.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{
    Error, FnArg, GenericArgument, Ident, Pat, PathArguments, Receiver, ReturnType, Signature, Type,
};

use crate::shared::companions::sits_in_impl;
use crate::shared::errors::Errors;

/// One typed argument of the function.
pub(crate) struct Arg<'a> {
    pub(crate) pat: &'a Pat,
    pub(crate) ty: &'a Type,
    /// The argument's name when its pattern is a plain binding (`x`, `mut x`).
    pub(crate) ident: Option<&'a Ident>,
}

pub(crate) struct FnShape<'a> {
    pub(crate) sig: &'a Signature,
    pub(crate) receiver: Option<&'a Receiver>,
    pub(crate) args: Vec<Arg<'a>>,
    /// A method or associated function: companions become associated functions
    /// instead of a module, which an `impl` block cannot hold.
    pub(crate) in_impl: bool,
    /// The declared return type (`()` when there is none).
    pub(crate) output: Type,
    /// For a return type written `Result<T, ..>`: `T`.
    pub(crate) result_ok: Option<Type>,
}

impl<'a> FnShape<'a> {
    /// The shape of `sig`, with what makes it impossible to memoize kept in `errors`. The
    /// shape is returned whatever was wrong: the stand-in companions of a failed expansion
    /// are shaped by it.
    pub(crate) fn analyze(sig: &'a Signature, errors: &mut Errors) -> FnShape<'a> {
        if let Some(constness) = &sig.constness {
            errors.push(Error::new(
                constness.span,
                "a `const fn` cannot be memoized: its cache lives at run time",
            ));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(Error::new_spanned(
                variadic,
                "a variadic function cannot be memoized",
            ));
        }
        let mut receiver = None;
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(found) => receiver = Some(found),
                FnArg::Typed(typed) => args.push(Arg {
                    pat: &typed.pat,
                    ty: &typed.ty,
                    ident: match &*typed.pat {
                        Pat::Ident(binding) if binding.subpat.is_none() => Some(&binding.ident),
                        _ => None,
                    },
                }),
            }
        }
        let output: Type = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        errors.keep(check_output(&output));
        FnShape {
            sig,
            receiver,
            in_impl: sits_in_impl(sig),
            result_ok: result_ok_type(&output),
            output,
            args,
        }
    }
}

/// A cached value is handed out again later, so it must own its data.
fn check_output(output: &Type) -> syn::Result<()> {
    match output {
        Type::ImplTrait(_) => Err(Error::new_spanned(
            output,
            "a memoized function cannot return `impl Trait`: the cache must store and clone a value of a named type",
        )),
        Type::Reference(_) => Err(Error::new_spanned(
            output,
            "a memoized function must return an owned value: a reference cannot outlive the call it came from; return an owned type (e.g. `String`, `Arc<T>`)",
        )),
        _ => Ok(()),
    }
}

/// `T` of a return type written `Result<T, E>` or `io::Result<T>`.
fn result_ok_type(output: &Type) -> Option<Type> {
    let Type::Path(path) = output else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    generics.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ok) => Some(ok.clone()),
        _ => None,
    })
}

/// Whether `tokens` mention `ident` anywhere (for `key = ..` expressions and generics).
pub(crate) fn mentions(tokens: TokenStream, ident: &str) -> bool {
    tokens.into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Ident(found) => found == ident,
        proc_macro2::TokenTree::Group(group) => mentions(group.stream(), ident),
        _ => false,
    })
}

/// The names a pattern binds (`(a, b)` binds `a` and `b`).
pub(crate) fn bindings(pat: &Pat) -> Vec<Ident> {
    struct Bindings(Vec<Ident>);
    impl Visit<'_> for Bindings {
        fn visit_pat_ident(&mut self, binding: &syn::PatIdent) {
            self.0.push(binding.ident.clone());
            syn::visit::visit_pat_ident(self, binding);
        }
    }
    let mut found = Bindings(Vec::new());
    found.visit_pat(pat);
    found.0
}

pub(crate) fn is_impl_trait(ty: &Type) -> bool {
    mentions_impl(ty.to_token_stream())
}

fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Ident(found) => found == "impl",
        proc_macro2::TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}
