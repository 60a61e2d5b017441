//! Reading what a stage produced back in unit tests: the errors it kept, and an
//! expansion's `compile_error!`s, items and the runtime paths it names.

use proc_macro2::{TokenStream, TokenTree};
use syn::{File, Item, ItemFn, ItemMod, Lit};

use super::errors::Errors;

/// The messages of the errors kept, in order.
pub(crate) fn messages(errors: Errors) -> Vec<String> {
    errors
        .into_error()
        .map(|error| error.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default()
}

/// The expansion, parsed: every expansion is a list of items.
pub(crate) fn items(expanded: TokenStream) -> Vec<Item> {
    syn::parse2::<File>(expanded)
        .expect("the expansion is a list of items")
        .items
}

/// The messages of the `compile_error!`s among `items`, in order.
pub(crate) fn compile_errors(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| {
            let Item::Macro(call) = item else { return None };
            if call.mac.path.segments.last()?.ident != "compile_error" {
                return None;
            }
            match call.mac.parse_body::<Lit>().ok()? {
                Lit::Str(message) => Some(message.value()),
                _ => None,
            }
        })
        .collect()
}

/// The function `name` among `items`.
pub(crate) fn function<'a>(items: &'a [Item], name: &str) -> &'a ItemFn {
    items
        .iter()
        .find_map(|item| match item {
            Item::Fn(function) if function.sig.ident == name => Some(function),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no function `{name}` in the expansion"))
}

/// The module `name` among `items`.
pub(crate) fn module<'a>(items: &'a [Item], name: &str) -> &'a ItemMod {
    items
        .iter()
        .find_map(|item| match item {
            Item::Mod(module) if module.ident == name => Some(module),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no module `{name}` in the expansion"))
}

/// The names of the functions in `module`, in order.
pub(crate) fn function_names(module: &ItemMod) -> Vec<String> {
    let (_, items) = module.content.as_ref().expect("an inline module");
    items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(function) => Some(function.sig.ident.to_string()),
            _ => None,
        })
        .collect()
}

/// What follows `runtime::` wherever `tokens` name the runtime crate `runtime`: the
/// generated code may name nothing of it but `__private`.
pub(crate) fn runtime_items_named(tokens: TokenStream, runtime: &str) -> Vec<String> {
    let mut named = Vec::new();
    collect_runtime_items(tokens, runtime, &mut named);
    named
}

fn collect_runtime_items(tokens: TokenStream, runtime: &str, named: &mut Vec<String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (index, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(group) => collect_runtime_items(group.stream(), runtime, named),
            TokenTree::Ident(ident) if ident == runtime => {
                // `runtime :: item`: the path separator is two `:` punctuation tokens.
                if let Some(TokenTree::Ident(item)) = trees.get(index + 3) {
                    named.push(item.to_string());
                }
            }
            _ => {}
        }
    }
}
