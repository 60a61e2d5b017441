//! Procedural macros of [cachemacro](https://docs.rs/cachemacro-runtime).
//!
//! Depend on `cachemacro-runtime`, which re-exports these macros and holds everything the
//! generated code calls; this crate is its compile-time half. Each macro goes parse,
//! validate, expand, one module per stage; what both do alike is in `shared`.

mod memoize;
mod page;
mod shared;

use proc_macro::TokenStream;

/// Caches a function's results by its arguments. Documented in
/// `cachemacro_runtime::memoize`, which re-exports it.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    memoize::memoize(attr.into(), item.into()).into()
}

/// Caches the whole response of an axum handler. Documented in
/// `cachemacro_runtime::cache_page`, which re-exports it.
#[proc_macro_attribute]
pub fn cache_page(attr: TokenStream, item: TokenStream) -> TokenStream {
    page::cache_page(attr.into(), item.into()).into()
}
