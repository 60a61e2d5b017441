use proc_macro2::TokenStream;
use quote::quote;
use syn::{parse_quote, Item, ItemFn, Signature};

use super::attr::PageArgs;
use super::expand::cached_handler;
use super::validate::check_handler;
use super::*;
use crate::shared::inspect::{
    compile_errors, function, function_names, items, messages, module, runtime_items_named,
};

fn parse_args(tokens: TokenStream) -> (PageArgs, Vec<String>) {
    let mut errors = Errors::default();
    let args = PageArgs::parse(tokens, &mut errors);
    (args, messages(errors))
}

fn handler_errors(sig: Signature) -> Vec<String> {
    let mut errors = Errors::default();
    check_handler(&sig, &mut errors);
    messages(errors)
}

#[test]
fn options_are_read_with_their_values() {
    let (args, errors) = parse_args(quote!(
        ttl = "15m",
        stale = 30,
        vary = ["Accept-Language", "Cookie"],
        query = false,
        key_prefix = "books:",
        crate = "renamed"
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(args.runtime_path().to_string(), quote!(renamed).to_string());
    assert_eq!(args.ttl.map(|ttl| ttl.value), Some(900_000));
    assert_eq!(args.stale.map(|stale| stale.value), Some(30_000));
    let vary: Vec<String> = args
        .vary
        .expect("vary")
        .value
        .iter()
        .map(|name| name.value())
        .collect();
    assert_eq!(vary, ["Accept-Language", "Cookie"]);
    assert_eq!(args.query.map(|query| query.value), Some(false));
    assert_eq!(args.key_prefix.expect("key_prefix").value.value(), "books:");
}

#[test]
fn option_errors_are_reported_together() {
    let (args, errors) = parse_args(quote!(
        ttl = "15x",
        colour = 1,
        stale = "0s",
        vary = ["Accept Language"],
        query = "no",
        key_prefix = 3,
        query = true
    ));
    assert_eq!(errors.len(), 6, "{errors:?}");
    assert!(
        errors[0].starts_with("invalid `ttl` `15x`: unknown unit `x`"),
        "{errors:?}"
    );
    assert_eq!(
        errors[1],
        "unknown cache_page option `colour`; expected one of: ttl, stale, store, key_prefix, vary, query, ignore_query, crate"
    );
    assert!(
        errors[2].starts_with("a zero `stale` window is the default"),
        "{errors:?}"
    );
    assert_eq!(errors[3], "`Accept Language` is not a valid header name");
    assert_eq!(errors[4], "invalid `query`: expected `true` or `false`");
    assert_eq!(
        errors[5],
        "invalid `key_prefix`: expected a string, like `key_prefix = \"books:\"`"
    );
    // A value that failed fills no slot, so the second `query` is read, not a duplicate.
    assert_eq!(args.query.map(|query| query.value), Some(true));
}

#[test]
fn vary_lists_header_names_as_strings() {
    let (_, errors) = parse_args(quote!(vary = "Accept-Language"));
    assert_eq!(
        errors,
        ["`vary` takes a list of header names, like `vary = [\"Accept-Language\"]`"]
    );
    let (_, errors) = parse_args(quote!(vary = [accept_language]));
    assert_eq!(
        errors,
        ["`vary` lists header names as string literals, like `vary = [\"Accept-Language\"]`"]
    );
}

#[test]
fn a_handler_is_a_free_async_fn_without_generics() {
    assert!(handler_errors(parse_quote!(async fn book(id: u32) -> String)).is_empty());
    assert_eq!(
        handler_errors(parse_quote!(fn book() -> String)),
        ["#[cache_page] needs an `async fn` (an axum handler)"]
    );
    let errors = handler_errors(parse_quote!(async fn book<T>(&self) -> String));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("not methods"), "{errors:?}");
    assert!(errors[1].contains("cannot be generic"), "{errors:?}");
    assert_eq!(
        handler_errors(parse_quote!(const fn book() -> String)),
        [
            "#[cache_page] needs an `async fn` (an axum handler)",
            "a `const fn` cannot be an axum handler"
        ]
    );
}

#[test]
fn options_and_signature_errors_are_reported_together() {
    let expanded = cache_page(
        quote!(ttl = "1m", stale = "15x", colour = 1, ttl = "2m"),
        quote!(
            fn handler() -> String {
                String::new()
            }
        ),
    );
    let errors = compile_errors(&items(expanded));
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[0].starts_with("invalid `stale`"), "{errors:?}");
    assert!(
        errors[1].starts_with("unknown cache_page option `colour`"),
        "{errors:?}"
    );
    assert_eq!(errors[2], "duplicate `ttl` option; give it once");
    assert!(errors[3].contains("needs an `async fn`"), "{errors:?}");
}

fn book() -> ItemFn {
    parse_quote!(
        /// The book page.
        pub async fn book(Path(id): Path<u32>, State(db): State<Db>) -> String {
            db.render(id)
        }
    )
}

#[test]
fn the_handler_takes_the_request_head_in_front_and_keeps_its_extractors() {
    let (args, _) = parse_args(quote!(ttl = "15m", vary = ["Accept-Language"]));
    let items = items(cached_handler(&book(), &args, &args.runtime_path()));
    let handler = function(&items, "book");
    assert!(handler.sig.asyncness.is_some());
    assert_eq!(
        handler.attrs.len(),
        1,
        "the doc comment stays on the handler"
    );
    let inputs: Vec<String> = handler
        .sig
        .inputs
        .iter()
        .map(|input| quote!(#input).to_string())
        .collect();
    assert_eq!(
        inputs,
        [
            quote!(__cachemacro_request: ::cachemacro_runtime::__private::PageRequest<book::__CachemacroHandler>).to_string(),
            quote!(__cachemacro_arg0: Path<u32>).to_string(),
            quote!(__cachemacro_arg1: State<Db>).to_string(),
        ]
    );
    let output = &handler.sig.output;
    assert_eq!(
        quote!(#output).to_string(),
        quote!(-> ::cachemacro_runtime::__private::Response).to_string()
    );
    let companions = module(&items, "book");
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
}

#[test]
fn the_options_configure_the_page_cache() {
    let (args, _) = parse_args(quote!(
        ttl = "1s",
        stale = "2s",
        vary = ["Cookie"],
        query = false,
        key_prefix = "books:"
    ));
    let text = cached_handler(&book(), &args, &args.runtime_path()).to_string();
    for expected in [
        quote!(PageCache::key_prefix(
            ::cachemacro_runtime::__private::PageCache::new(),
            "books:"
        )),
        quote!(Duration::from_millis(1000u64)),
        quote!(Duration::from_millis(2000u64)),
        quote!(PageCache::vary),
        quote!(["Cookie"]),
        quote!(PageCache::query),
    ] {
        assert!(text.contains(&expected.to_string()), "{expected} in {text}");
    }
}

#[test]
fn generated_code_names_only_the_runtime_s_private_module() {
    let (args, _) = parse_args(quote!(store = MemoryStore::builder().build(), ttl = "1m"));
    let expanded = cached_handler(&book(), &args, &args.runtime_path());
    let named = runtime_items_named(expanded, "cachemacro_runtime");
    assert!(!named.is_empty());
    assert!(named.iter().all(|item| item == "__private"), "{named:?}");

    let (args, _) = parse_args(quote!(crate = "renamed"));
    let expanded = cached_handler(&book(), &args, &args.runtime_path());
    assert!(runtime_items_named(expanded.clone(), "cachemacro_runtime").is_empty());
    let named = runtime_items_named(expanded, "renamed");
    assert!(named.iter().all(|item| item == "__private"), "{named:?}");
}

#[test]
fn on_an_error_the_handler_and_stand_in_companions_are_kept() {
    let handler = book();
    let items = items(cache_page(quote!(ttl = "15x"), quote!(#handler)));
    assert_eq!(compile_errors(&items).len(), 1);
    // The handler as written: no request head, its own return type and body.
    let kept = function(&items, "book");
    assert_eq!(quote!(#kept).to_string(), quote!(#handler).to_string());
    let stand_ins = module(&items, "book");
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
    // Stand-ins reach no page cache: there is none.
    let text = quote!(#stand_ins).to_string();
    assert!(!text.contains("__CACHEMACRO_PAGE"), "{text}");
}

#[test]
fn a_method_gets_no_module_of_stand_ins() {
    let items = items(cache_page(
        quote!(),
        quote!(
            async fn page(&self) -> String {
                String::new()
            }
        ),
    ));
    assert_eq!(compile_errors(&items).len(), 1);
    function(&items, "page");
    assert!(!items.iter().any(|item| matches!(item, Item::Mod(_))));
}

#[test]
fn an_item_that_is_not_a_function_is_named_in_the_error() {
    let items = items(cache_page(
        quote!(ttl = "1m"),
        quote!(
            struct Page;
        ),
    ));
    assert_eq!(
        compile_errors(&items),
        ["#[cache_page] applies to an async handler function, not to a struct"]
    );
    assert!(matches!(items.last(), Some(Item::Struct(_))));
}

fn option_errors(tokens: TokenStream) -> Vec<String> {
    let mut errors = Errors::default();
    let args = PageArgs::parse(tokens, &mut errors);
    super::validate::check_ignore_query(&args, &mut errors);
    messages(errors)
}

#[test]
fn ignore_query_takes_a_list_of_patterns() {
    let (args, errors) = parse_args(quote!(ignore_query = ["utm_*", "fbclid"], query = true));
    assert!(errors.is_empty(), "{errors:?}");
    let patterns: Vec<String> = args
        .ignore_query
        .expect("ignore_query")
        .value
        .iter()
        .map(|pattern| pattern.value())
        .collect();
    assert_eq!(patterns, ["utm_*", "fbclid"]);
    assert!(option_errors(quote!(ignore_query = ["utm_?", "a%20b", "x.y~z"])).is_empty());
    assert_eq!(
        option_errors(quote!(ignore_query = "utm_*")),
        ["`ignore_query` takes a list of query parameter patterns, like `ignore_query = [\"utm_*\", \"fbclid\"]`"]
    );
    assert_eq!(
        option_errors(quote!(ignore_query = [utm])),
        ["`ignore_query` lists query parameter patterns as string literals, like `ignore_query = [\"utm_*\", \"fbclid\"]`"]
    );
}

#[test]
fn ignore_query_patterns_are_checked_together() {
    let errors = option_errors(quote!(
        ignore_query = ["", "utm source", "a&b", "*", "**", "ok_*"]
    ));
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert_eq!(errors[0], "an `ignore_query` pattern cannot be empty");
    assert!(
        errors[1].starts_with("' ' cannot be part of a query parameter name"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("'&' cannot be part of a query parameter name"),
        "{errors:?}"
    );
    assert_eq!(
        errors[3],
        "`*` leaves every query parameter out of the key; write `query = false`"
    );
    assert_eq!(
        errors[4],
        "`**` leaves every query parameter out of the key; write `query = false`"
    );
    assert!(option_errors(quote!(ignore_query = []))[0]
        .starts_with("`ignore_query` needs at least one pattern"));
}

#[test]
fn ignore_query_conflicts_with_query_false() {
    let errors = option_errors(quote!(query = false, ignore_query = ["utm_*"]));
    assert_eq!(
        errors,
        [
            "`ignore_query` with `query = false`: the query string is not part of the key, so there is no parameter to leave out",
            "the query string is left out here"
        ]
    );
    assert!(option_errors(quote!(query = true, ignore_query = ["utm_*"])).is_empty());
}

#[test]
fn ignore_query_configures_the_page_cache() {
    let (args, _) = parse_args(quote!(ignore_query = ["utm_*", "fbclid"]));
    let text = cached_handler(&book(), &args, &args.runtime_path()).to_string();
    let expected = quote!(PageCache::ignore_query);
    assert!(text.contains(&expected.to_string()), "{text}");
    assert!(
        text.contains(&quote!(["utm_*", "fbclid"]).to_string()),
        "{text}"
    );
}
