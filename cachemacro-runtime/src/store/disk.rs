//! `DiskStore` (issue 6): being written.
