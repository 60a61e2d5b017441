//! `#[cache_page]`: parse the options (`attr`), check the handler (`validate`), expand
//! (`expand`).
//!
//! On any error the handler is emitted unchanged next to the `compile_error!`, with
//! stand-ins for its companions (see `shared::recovery`).

mod attr;
mod expand;
mod validate;

use proc_macro2::TokenStream;

use crate::shared::companions::sits_in_impl;
use crate::shared::errors::Errors;
use crate::shared::options::AttributeOptions;
use crate::shared::recovery::{self, expand_function, Failure};
use attr::PageArgs;

pub(crate) fn cache_page(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(item, not_a_function, |function| {
        let mut errors = Errors::default();
        // Both halves are read before failing, so that option and signature errors are
        // reported together.
        let args = PageArgs::parse(attr, &mut errors);
        validate::check_handler(&function.sig, &mut errors);
        validate::check_ignore_query(&args, &mut errors);
        let rt = args.runtime_path();
        match errors.into_error() {
            None => Ok(expand::cached_handler(function, &args, &rt)),
            Some(errors) => Err(Failure {
                errors,
                // In an impl block (the handler was a method) a module of stand-ins would
                // be an error of its own; a method has no page companions to call anyway.
                stand_ins: if sits_in_impl(&function.sig) {
                    TokenStream::new()
                } else {
                    expand::stand_in_companions(function, &rt)
                },
            }),
        }
    })
}

fn not_a_function(item: &TokenStream) -> syn::Error {
    recovery::not_a_function(
        item,
        "#[cache_page] applies to an async handler function",
        |_| None,
    )
}

#[cfg(test)]
mod tests;
