//! What an attribute on a function expands to when it is wrong.
//!
//! The user's item is never dropped: it is emitted as written next to the
//! `compile_error!`, with stand-ins for the companions the macro would have generated, as
//! `tokio::main` and `#[tracing::instrument]` keep the function. Callers of the function
//! and of its companions still compile, IDEs keep completing, and one mistake does not
//! cascade into an error at every call site.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{Error, Ident, Item, ItemFn};

/// A failed expansion: every error found, and the stand-in companions to emit with them.
pub(crate) struct Failure {
    pub(crate) errors: Error,
    pub(crate) stand_ins: TokenStream,
}

/// Expands `item` with `expand` when it is a function with a body. Otherwise, or when
/// `expand` fails, emits the errors next to the item as written.
pub(crate) fn expand_function(
    item: TokenStream,
    not_a_function: impl FnOnce(&TokenStream) -> Error,
    expand: impl FnOnce(&ItemFn) -> Result<TokenStream, Failure>,
) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = not_a_function(&item).to_compile_error();
            return quote!(#error #item);
        }
    };
    match expand(&function) {
        Ok(expanded) => expanded,
        Err(Failure { errors, stand_ins }) => {
            let errors = errors.to_compile_error();
            quote!(#errors #function #stand_ins)
        }
    }
}

/// The kinds of item an attribute for functions is most often put on by mistake.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ItemKind {
    Struct,
    Enum,
    Union,
    Trait,
    Impl,
    Module,
    Const,
    Static,
    TypeAlias,
}

impl ItemKind {
    fn described(self) -> &'static str {
        match self {
            ItemKind::Struct => "a struct",
            ItemKind::Enum => "an enum",
            ItemKind::Union => "a union",
            ItemKind::Trait => "a trait",
            ItemKind::Impl => "an impl block",
            ItemKind::Module => "a module",
            ItemKind::Const => "a constant",
            ItemKind::Static => "a static",
            ItemKind::TypeAlias => "a type alias",
        }
    }
}

/// The error for an item that is not a function with a body: `accepted`, what was found
/// and the `hint` for that kind, on the item's kind and name (`struct Lookup`) rather
/// than on the attribute.
pub(crate) fn not_a_function(
    item: &TokenStream,
    accepted: &str,
    hint: impl FnOnce(ItemKind) -> Option<&'static str>,
) -> Error {
    let Some((kind, head)) = item_head(item) else {
        return Error::new(Span::call_site(), accepted);
    };
    let found = kind.described();
    match hint(kind) {
        Some(hint) => Error::new_spanned(head, format!("{accepted}, not to {found}; {hint}")),
        None => Error::new_spanned(head, format!("{accepted}, not to {found}")),
    }
}

fn item_head(item: &TokenStream) -> Option<(ItemKind, TokenStream)> {
    fn named(keyword: impl ToTokens, ident: &Ident) -> TokenStream {
        quote!(#keyword #ident)
    }
    Some(match syn::parse2::<Item>(item.clone()).ok()? {
        Item::Struct(item) => (ItemKind::Struct, named(item.struct_token, &item.ident)),
        Item::Enum(item) => (ItemKind::Enum, named(item.enum_token, &item.ident)),
        Item::Union(item) => (ItemKind::Union, named(item.union_token, &item.ident)),
        Item::Trait(item) => (ItemKind::Trait, named(item.trait_token, &item.ident)),
        Item::Impl(item) => (ItemKind::Impl, item.impl_token.into_token_stream()),
        Item::Mod(item) => (ItemKind::Module, named(item.mod_token, &item.ident)),
        Item::Const(item) => (ItemKind::Const, named(item.const_token, &item.ident)),
        Item::Static(item) => (ItemKind::Static, named(item.static_token, &item.ident)),
        Item::Type(item) => (ItemKind::TypeAlias, named(item.type_token, &item.ident)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
