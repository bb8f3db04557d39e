//! Runnable examples of embedding Peeka's library crates.
//!
//! Run one with `cargo run -p peeka-examples --example <name>`; the list is
//! in this package's `Cargo.toml`.
