use quote::quote;

use super::*;
use crate::shared::inspect::{compile_errors, function, items};

fn failing(function: &ItemFn) -> Result<TokenStream, Failure> {
    let ident = &function.sig.ident;
    Err(Failure {
        errors: Error::new(Span::call_site(), "wrong option"),
        stand_ins: quote!(mod #ident {}),
    })
}

fn accepted(item: &TokenStream) -> Error {
    not_a_function(item, "#[test_attr] applies to a function", |kind| {
        (kind == ItemKind::Trait).then_some("put it on its methods")
    })
}

#[test]
fn a_failure_keeps_the_function_and_its_stand_ins() {
    let expanded = expand_function(
        quote!(
            fn lookup(id: u32) -> u32 {
                id
            }
        ),
        accepted,
        failing,
    );
    let items = items(expanded);
    assert_eq!(compile_errors(&items), ["wrong option"]);
    assert_eq!(function(&items, "lookup").sig.inputs.len(), 1);
    assert!(matches!(items.last(), Some(Item::Mod(module)) if module.ident == "lookup"));
}

#[test]
fn a_success_is_the_expansion_alone() {
    let expanded = expand_function(
        quote!(
            fn lookup() {}
        ),
        accepted,
        |_| {
            Ok(quote!(
                fn expanded() {}
            ))
        },
    );
    let items = items(expanded);
    assert_eq!(items.len(), 1);
    function(&items, "expanded");
}

#[test]
fn an_item_that_is_not_a_function_is_kept_and_named_in_the_error() {
    let expanded = expand_function(
        quote!(
            struct Lookup;
        ),
        accepted,
        failing,
    );
    let items = items(expanded);
    assert_eq!(
        compile_errors(&items),
        ["#[test_attr] applies to a function, not to a struct"]
    );
    assert!(matches!(items.last(), Some(Item::Struct(item)) if item.ident == "Lookup"));
}

#[test]
fn the_hint_follows_the_kind_it_is_for() {
    let message = |item: TokenStream| accepted(&item).to_string();
    assert_eq!(
        message(quote!(
            trait Lookup {
                fn get(&self) -> u32;
            }
        )),
        "#[test_attr] applies to a function, not to a trait; put it on its methods"
    );
    assert_eq!(
        message(quote!(impl Lookup {})),
        "#[test_attr] applies to a function, not to an impl block"
    );
    assert_eq!(
        message(quote!(
            const LIMIT: u32 = 1;
        )),
        "#[test_attr] applies to a function, not to a constant"
    );
    // What is not an item at all gets the plain message.
    assert_eq!(message(quote!(1 + 1)), "#[test_attr] applies to a function");
}
