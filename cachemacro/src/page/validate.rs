//! Which functions can be a cached axum handler, and which options make sense together.

use syn::{Error, FnArg, Signature};

use super::attr::PageArgs;
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

/// The `ignore_query` patterns: each one a name a query parameter can have (the runtime's
/// `PageCache::ignore_query` would panic on it otherwise), none that leaves out every
/// parameter, and none with `query = false`, where there is no parameter to leave out.
pub(crate) fn check_ignore_query(args: &PageArgs, errors: &mut Errors) {
    let Some(patterns) = &args.ignore_query else {
        return;
    };
    if let Some(query) = args.query.as_ref().filter(|query| !query.value) {
        let mut conflict = Error::new(
            patterns.span,
            "`ignore_query` with `query = false`: the query string is not part of the key, so there is no parameter to leave out",
        );
        conflict.combine(Error::new(query.span, "the query string is left out here"));
        errors.push(conflict);
        return;
    }
    if patterns.value.is_empty() {
        errors.push(Error::new(
            patterns.span,
            "`ignore_query` needs at least one pattern, like `ignore_query = [\"utm_*\"]`; leave it out to keep every parameter",
        ));
    }
    for pattern in &patterns.value {
        let text = pattern.value();
        let problem = if text.is_empty() {
            Some("an `ignore_query` pattern cannot be empty".to_owned())
        } else if text.chars().all(|c| c == '*') {
            Some(format!(
                "`{text}` leaves every query parameter out of the key; write `query = false`"
            ))
        } else {
            text.chars().find(|&c| !is_parameter_name_char(c)).map(|c| {
                format!(
                    "{c:?} cannot be part of a query parameter name; a pattern holds letters, digits, `-._~%!$'()+,;:@/` and the wildcards `*` and `?`"
                )
            })
        };
        if let Some(problem) = problem {
            errors.push(Error::new(pattern.span(), problem));
        }
    }
}

/// RFC 3986 §3.4: a query character (`pchar`, `/`, `?`), less the `&` and `=` that end a
/// parameter's name. The same set as the runtime's `query_filter::is_name_char`.
fn is_parameter_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$'()*+,;:@/?".contains(c)
}
