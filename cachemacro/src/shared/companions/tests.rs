use quote::quote;
use syn::{parse_quote, Item, ItemFn};

use super::*;
use crate::shared::inspect::{function_names, items, module};

fn widened(vis: Visibility) -> String {
    companion_visibility(&vis).to_string()
}

#[test]
fn each_visibility_is_widened_by_one_module() {
    assert_eq!(
        widened(Visibility::Inherited),
        quote!(pub(super)).to_string()
    );
    assert_eq!(widened(parse_quote!(pub)), quote!(pub).to_string());
    assert_eq!(
        widened(parse_quote!(pub(self))),
        quote!(pub(super)).to_string()
    );
    assert_eq!(
        widened(parse_quote!(pub(super))),
        quote!(pub(in super::super)).to_string()
    );
    assert_eq!(
        widened(parse_quote!(pub(crate))),
        quote!(pub(crate)).to_string()
    );
    assert_eq!(
        widened(parse_quote!(pub(in crate::shop))),
        quote!(pub(in crate::shop)).to_string()
    );
    // A relative path cannot be widened by one module: the crate is as wide as it goes.
    assert_eq!(
        widened(parse_quote!(pub(in self::shop))),
        quote!(pub(crate)).to_string()
    );
}

#[test]
fn methods_and_functions_that_name_self_sit_in_an_impl() {
    let method: Signature = parse_quote!(fn count(&self) -> usize);
    let constructor: Signature = parse_quote!(fn new(id: u32) -> Self);
    let by_type: Signature = parse_quote!(fn same(other: &Self) -> bool);
    let free: Signature = parse_quote!(fn count(shop: &Shop) -> usize);
    assert!(sits_in_impl(&method));
    assert!(sits_in_impl(&constructor));
    assert!(sits_in_impl(&by_type));
    assert!(!sits_in_impl(&free));
}

fn clear(body: Option<TokenStream>) -> Companion {
    Companion {
        name: "clear",
        doc: "Removes everything.",
        is_async: false,
        signature: quote!(()),
        body,
    }
}

#[test]
fn a_module_holds_the_state_and_the_companions() {
    let expanded = companion_module(
        &parse_quote!(pub),
        &parse_quote!(lookup),
        "Companions.",
        quote!(
            static STATE: u8 = 0;
        ),
        [clear(Some(quote!(let _ = STATE;)))],
    );
    let items = items(expanded);
    let lookup = module(&items, "lookup");
    assert_eq!(function_names(lookup), ["clear"]);
    let text = quote!(#lookup).to_string();
    assert!(text.contains("static STATE"), "{text}");
    assert!(text.contains("let _ = STATE"), "{text}");
}

#[test]
fn associated_companions_are_prefixed_with_the_method() {
    let expanded = associated_companions(
        &parse_quote!(pub),
        &parse_quote!(count),
        TokenStream::new(),
        [clear(Some(TokenStream::new()))],
    );
    let items = items(expanded);
    assert_eq!(items.len(), 1);
    let Item::Fn(companion) = &items[0] else {
        panic!("a function")
    };
    assert_eq!(companion.sig.ident, "count_clear");
}

#[test]
fn a_stand_in_keeps_the_signature_and_drops_the_body() {
    let stand_in = clear(Some(quote!(STATE.clear()))).stand_in();
    assert!(stand_in.body.is_none());
    let emitted = stand_in.emit(&quote!(pub), &parse_quote!(clear));
    let text = emitted.to_string();
    assert!(!text.contains("STATE"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("unused_variables"), "{text}");
}

fn clear_async() -> Companion {
    Companion {
        name: "clear_async",
        is_async: true,
        ..clear(Some(quote!(STATE.clear_async().await;)))
    }
}

#[test]
fn an_async_companion_and_its_stand_in_are_async_fns() {
    for companion in [clear_async(), clear_async().stand_in()] {
        let emitted = companion.emit(&quote!(pub), &parse_quote!(clear_async));
        let function: ItemFn = syn::parse2(emitted).expect("a function");
        assert!(function.sig.asyncness.is_some(), "{}", quote!(#function));
    }
    let sync = clear(None).emit(&quote!(pub), &parse_quote!(clear));
    let function: ItemFn = syn::parse2(sync).expect("a function");
    assert!(function.sig.asyncness.is_none());
}
