//! Which functions can be a cached axum handler.

use syn::{Error, FnArg, Signature};

use crate::shared::errors::Errors;

/// A handler must be a free `async fn` without generics: its cache is one static next to
/// it. What is not is kept in `errors`.
pub(crate) fn check_handler(sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.push(Error::new(
            sig.fn_token.span,
            "#[cache_page] needs an `async fn` (an axum handler)",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(Error::new(
            constness.span,
            "a `const fn` cannot be an axum handler",
        ));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.push(Error::new_spanned(
            receiver,
            "#[cache_page] applies to free handler functions, not methods; call the method from a handler",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(Error::new_spanned(
            &sig.generics,
            "a #[cache_page] handler cannot be generic: its page cache is one static shared by every call",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::new_spanned(
            variadic,
            "a variadic function cannot be an axum handler",
        ));
    }
}
