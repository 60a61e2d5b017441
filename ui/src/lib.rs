//! Holds the `trybuild` UI tests (`tests/`); no code of its own.
