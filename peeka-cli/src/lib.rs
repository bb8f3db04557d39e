//! Shared plumbing of Peeka's two binaries, `peeka-cli` (scriptable, JSON
//! Lines on stdout) and `peeka` (a terminal UI).
//!
//! The binaries will live here once the agent and the typed client in
//! `peeka-core` exist; this crate only decides output formats and exit codes,
//! everything else is in the library crates.
#![deny(missing_docs)]
