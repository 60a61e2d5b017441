//! What `#[memoize]` and `#[cache_page]` do alike: reading options, durations, companions,
//! collecting errors, and the expansion of a wrong attribute.

pub(crate) mod companions;
pub(crate) mod duration;
pub(crate) mod errors;
#[cfg(test)]
pub(crate) mod inspect;
pub(crate) mod options;
pub(crate) mod recovery;
