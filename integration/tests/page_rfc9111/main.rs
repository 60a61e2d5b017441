//! The page cache held to RFC 9111 (HTTP caching) and the parts of RFC 9110 a cache
//! must follow: one test per rule, each named after its section, each run through
//! `oneshot` and over a socket, in the application mode and (where the rule holds
//! there) the shared mode, and the stale extensions of RFC 5861. The harness is in
//! `harness.rs`.

mod harness;

mod age;
mod freshness;
mod invalidation;
mod message_handling;
mod request_directives;
mod revalidation;
mod shared;
mod stale_extensions;
