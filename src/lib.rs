//! Integration tests and examples of cachemacro live in tests/ and examples/.
