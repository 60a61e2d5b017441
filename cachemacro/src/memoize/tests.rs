use proc_macro2::TokenStream;
use quote::quote;
use syn::{parse_quote, Item, ItemFn};

use super::*;
use crate::shared::inspect::{
    compile_errors, function, function_names, items, messages, module, runtime_items_named,
};

fn parse_args(tokens: TokenStream) -> (MemoizeArgs, Vec<String>) {
    let mut errors = Errors::default();
    let args = MemoizeArgs::parse(tokens, &mut errors);
    (args, messages(errors))
}

fn lookup() -> ItemFn {
    parse_quote!(
        pub fn lookup(db: &Db, id: u32, name: &str) -> String {
            db.find(id, name)
        }
    )
}

/// The arguments of the `invalidate` function among `module`'s items, checked to be
/// those of the `async fn invalidate_async` too.
fn invalidate_inputs(module: &syn::ItemMod) -> String {
    let (_, items) = module.content.as_ref().expect("an inline module");
    let invalidate = function(items, "invalidate");
    let invalidate_async = function(items, "invalidate_async");
    assert!(invalidate.sig.asyncness.is_none());
    assert!(invalidate_async.sig.asyncness.is_some());
    let inputs = &invalidate.sig.inputs;
    let async_inputs = &invalidate_async.sig.inputs;
    assert_eq!(
        quote!(#inputs).to_string(),
        quote!(#async_inputs).to_string()
    );
    quote!(#inputs).to_string()
}

#[test]
fn options_are_read_with_their_values() {
    let (args, errors) = parse_args(quote!(
        ttl = "1m",
        stale = "5m",
        capacity = 10_000,
        ignore(db),
        name = "geo.lookup",
        crate = "renamed"
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(args.ttl.as_ref().map(|ttl| ttl.value), Some(60_000));
    assert_eq!(args.stale.as_ref().map(|stale| stale.value), Some(300_000));
    assert_eq!(
        args.capacity.as_ref().map(|capacity| capacity.value),
        Some(10_000)
    );
    assert!(args.ignores("db"));
    assert!(!args.ignores("id"));
    assert_eq!(args.runtime_path().to_string(), quote!(renamed).to_string());
}

#[test]
fn contradicting_options_are_reported_after_the_options() {
    let (_, errors) = parse_args(quote!(stale = "5m", weigher = |_, _| 1, colour = 1));
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("unknown memoize option `colour`"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("`weigher` weighs entries against `max_bytes`"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("`stale` is a window after `ttl`"),
        "{errors:?}"
    );
}

#[test]
fn the_shape_is_analyzed_even_when_the_signature_cannot_be_memoized() {
    let mut errors = Errors::default();
    let sig = parse_quote!(const fn first(&self, text: &str) -> &str);
    let shape = FnShape::analyze(&sig, &mut errors);
    assert!(shape.receiver.is_some());
    assert!(shape.in_impl);
    assert_eq!(shape.args.len(), 1);
    let errors = messages(errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("a `const fn` cannot be memoized"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("a memoized function must return an owned value"),
        "{errors:?}"
    );
}

#[test]
fn the_key_leaves_out_ignored_arguments() {
    let function = lookup();
    let (args, _) = parse_args(quote!(ignore(db)));
    let mut errors = Errors::default();
    let shape = FnShape::analyze(&function.sig, &mut errors);
    let key = KeyPlan::derive(&shape, &args, &args.runtime_path(), &mut errors);
    assert!(errors.is_empty());
    let companion_args: Vec<String> = key.companion_args.iter().map(ToString::to_string).collect();
    assert_eq!(
        companion_args,
        [quote!(id: u32).to_string(), quote!(name: &str).to_string()]
    );
    assert!(key.borrowed.is_some());
    assert!(!key.uses_receiver);
}

#[test]
fn a_valid_function_expands_with_its_companions() {
    let original = lookup();
    let items = items(memoize(quote!(ttl = "1m", ignore(db)), quote!(#original)));
    assert!(compile_errors(&items).is_empty());
    function(&items, "lookup");
    let companions = module(&items, "lookup");
    assert_eq!(
        function_names(companions),
        [
            "invalidate",
            "invalidate_async",
            "clear",
            "clear_async",
            "stats"
        ]
    );
    assert_eq!(
        invalidate_inputs(companions),
        quote!(id: u32, name: &str).to_string()
    );
}

#[test]
fn generated_code_names_only_the_runtime_s_private_module() {
    let function = lookup();
    for attr in [
        quote!(ttl = "1m", stale = "1m", capacity = 5),
        quote!(store = MemoryStore::builder().build()),
    ] {
        let named = runtime_items_named(memoize(attr, quote!(#function)), "cachemacro_runtime");
        assert!(!named.is_empty());
        assert!(named.iter().all(|item| item == "__private"), "{named:?}");
    }
}

#[test]
fn on_an_option_error_the_function_and_stand_in_companions_are_kept() {
    let original = lookup();
    let items = items(memoize(quote!(ttl = "15x", ignore(db)), quote!(#original)));
    assert_eq!(compile_errors(&items).len(), 1);
    let kept = function(&items, "lookup");
    assert_eq!(quote!(#kept).to_string(), quote!(#original).to_string());
    let stand_ins = module(&items, "lookup");
    assert_eq!(
        function_names(stand_ins),
        [
            "invalidate",
            "invalidate_async",
            "clear",
            "clear_async",
            "stats"
        ]
    );
    // Shaped by the options that were right: `db` stays out.
    assert_eq!(
        invalidate_inputs(stand_ins),
        quote!(id: u32, name: &str).to_string()
    );
    let text = quote!(#stand_ins).to_string();
    assert!(!text.contains("__CACHEMACRO_SLOT"), "{text}");
}

#[test]
fn key_errors_wait_for_the_options_and_the_signature() {
    let function: ItemFn = parse_quote!(
        fn lookup((a, b): (u32, u32), ids: impl Iterator<Item = u32>) -> u32 {
            a + b + ids.count() as u32
        }
    );
    // A wrong option alone is reported; the key's errors would echo what it left out.
    let items_with_option_error = items(memoize(quote!(ttl = "15x"), quote!(#function)));
    let errors = compile_errors(&items_with_option_error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("invalid `ttl`"), "{errors:?}");
    // With the options right, both key errors are reported together.
    let errors = compile_errors(&items(memoize(quote!(), quote!(#function))));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("a destructuring pattern"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("`ids` has an `impl Trait` type"),
        "{errors:?}"
    );
}

#[test]
fn a_method_gets_associated_stand_ins() {
    let method: ItemFn = parse_quote!(
        fn count(&self, genre: &str) -> usize {
            self.books(genre).len()
        }
    );
    let items = items(memoize(quote!(tti = 0), quote!(#method)));
    assert_eq!(compile_errors(&items).len(), 1);
    let names: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(function) => Some(function.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            "count",
            "count_invalidate",
            "count_invalidate_async",
            "count_clear",
            "count_clear_async",
            "count_stats"
        ]
    );
    for name in ["count_invalidate", "count_invalidate_async"] {
        let inputs = &function(&items, name).sig.inputs;
        assert_eq!(
            quote!(#inputs).to_string(),
            quote!(&self, genre: &str).to_string()
        );
    }
    assert!(function(&items, "count_clear_async")
        .sig
        .asyncness
        .is_some());
}

#[test]
fn an_item_that_is_not_a_function_is_named_in_the_error() {
    let items = items(memoize(quote!(), quote!(impl Catalogue {})));
    assert_eq!(
        compile_errors(&items),
        ["#[memoize] applies to a function or method with a body, not to an impl block; put it on the methods inside"]
    );
}
