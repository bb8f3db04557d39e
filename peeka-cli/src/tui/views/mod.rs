//! The views of the TUI, one module each.
pub(crate) mod dashboard;
pub(crate) mod threads;
pub(crate) mod watch;
