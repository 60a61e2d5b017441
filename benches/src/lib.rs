//! Holds the benchmarks (`benches/`) and the measuring programs (`examples/`) behind
//! BENCHMARKS.md; no code of its own.
