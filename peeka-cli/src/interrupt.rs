//! Ctrl-C (and SIGTERM): the first one ends the current stream cleanly (its
//! probe is removed in the target before `peeka-cli` exits); a second one
//! while that is under way exits at once with code 130.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use peeka_core::client::Canceller;

use crate::exit_code::ExitCode;

static CURRENT: Mutex<Option<Canceller>> = Mutex::new(None);
static PRESSES: AtomicU32 = AtomicU32::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

fn on_interrupt() {
    if PRESSES.fetch_add(1, Ordering::SeqCst) > 0 {
        std::process::exit(i32::from(ExitCode::Interrupted.code()));
    }
    let current = CURRENT.lock().ok().and_then(|c| c.clone());
    match current {
        Some(canceller) => canceller.cancel(),
        // Nothing to clean up in the target: stop now.
        None => std::process::exit(i32::from(ExitCode::Interrupted.code())),
    }
}

/// Makes Ctrl-C cancel `canceller`'s stream until the guard is dropped.
pub(crate) fn cancel_on_interrupt(canceller: Canceller) -> InterruptGuard {
    INSTALLED.get_or_init(|| ctrlc::set_handler(on_interrupt).is_ok());
    if let Ok(mut current) = CURRENT.lock() {
        *current = Some(canceller);
    }
    InterruptGuard(())
}

/// Whether Ctrl-C was pressed.
pub(crate) fn interrupted() -> bool {
    PRESSES.load(Ordering::SeqCst) > 0
}

/// Restores the default: Ctrl-C exits at once.
#[derive(Debug)]
pub(crate) struct InterruptGuard(());

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        if let Ok(mut current) = CURRENT.lock() {
            *current = None;
        }
    }
}
