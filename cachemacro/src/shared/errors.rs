//! Every error an attribute has, reported together: one mistake should not hide the next.

use syn::Error;

/// The errors found so far, combined into one `syn::Error` that keeps each span.
#[derive(Default)]
pub(crate) struct Errors(Option<Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The value of `result`, or `None` with its error kept.
    pub(crate) fn keep<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn into_error(self) -> Option<Error> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    #[test]
    fn keeps_every_error_in_order() {
        let mut errors = Errors::default();
        assert!(errors.is_empty());
        assert_eq!(errors.keep(Ok::<_, Error>(3)), Some(3));
        assert!(errors.is_empty());
        errors.push(Error::new(Span::call_site(), "first"));
        assert_eq!(
            errors.keep(Err::<u8, _>(Error::new(Span::call_site(), "second"))),
            None
        );
        let messages: Vec<String> = errors
            .into_error()
            .expect("two errors were kept")
            .into_iter()
            .map(|error| error.to_string())
            .collect();
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    fn nothing_kept_is_no_error() {
        assert!(Errors::default().into_error().is_none());
    }
}
