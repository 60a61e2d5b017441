//! Holds the benchmarks (`benches/`) and the measuring programs (`examples/`) behind
//! BENCHMARKS.md, and the one piece of code they share: replaying a key trace through
//! `MemoryStore` and the policies it is compared with ([`replay`]), Bélády's optimum
//! included ([`belady`]).

pub mod belady;
pub mod replay;
