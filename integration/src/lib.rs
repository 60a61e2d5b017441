//! Holds the integration tests of cachemacro (`tests/`); no code of its own.
