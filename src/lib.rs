//! The examples a newcomer runs (`examples/`): `nearby_stores`, `bookstore` (feature
//! `axum`) and `disk_cache` (feature `disk`). No code of its own.
