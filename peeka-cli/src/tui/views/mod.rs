//! The views of the TUI, one module each.
