//! `#[memoize]`: parse the options (`attr`), analyze the signature (`signature`), derive
//! the key (`key`), expand (`expand`).
//!
//! On any error the original function is emitted unchanged next to the `compile_error!`,
//! with stand-ins for its companions (see `shared::recovery`).

mod attr;
mod expand;
mod key;
mod signature;

use proc_macro2::TokenStream;

use crate::shared::errors::Errors;
use crate::shared::options::AttributeOptions;
use crate::shared::recovery::{self, expand_function, Failure, ItemKind};
use attr::MemoizeArgs;
use key::KeyPlan;
use signature::FnShape;

pub(crate) fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(item, not_a_function, |function| {
        let mut errors = Errors::default();
        // Both halves are read before failing, so that option and signature errors are
        // reported together.
        let args = MemoizeArgs::parse(attr, &mut errors);
        let shape = FnShape::analyze(&function.sig, &mut errors);
        let rt = args.runtime_path();
        let mut key_errors = Errors::default();
        let key = KeyPlan::derive(&shape, &args, &rt, &mut key_errors);
        // The key is checked only once the options and the signature are right: with an
        // option missing because it was wrong (a misspelt `ignore`), its errors would
        // mostly be echoes.
        if errors.is_empty() {
            errors = key_errors;
        }
        match errors.into_error() {
            None => Ok(expand::memoized(function, &shape, &args, &key, &rt)),
            Some(errors) => Err(Failure {
                errors,
                stand_ins: expand::stand_in_companions(function, &shape, &key, &rt),
            }),
        }
    })
}

fn not_a_function(item: &TokenStream) -> syn::Error {
    recovery::not_a_function(
        item,
        "#[memoize] applies to a function or method with a body",
        |kind| match kind {
            ItemKind::Trait => Some("put it on the methods that have a body"),
            ItemKind::Impl => Some("put it on the methods inside"),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests;
