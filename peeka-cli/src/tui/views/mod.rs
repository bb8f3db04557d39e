//! The views of the TUI, one module each.
pub(crate) mod dashboard;
pub(crate) mod inspect;
pub(crate) mod logger;
pub(crate) mod memory;
pub(crate) mod monitor;
pub(crate) mod request_task;
pub(crate) mod stack;
pub(crate) mod stream_feed;
pub(crate) mod stream_state;
pub(crate) mod threads;
pub(crate) mod top;
pub(crate) mod trace;
pub(crate) mod watch;
