//! The signals that end a run: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the
//! terminal closing). The library installs no signal handler; the binaries
//! decide here, once ([`install`]), what each signal does:
//!
//! - **During an attach** ([`AttachGuard`], around every attach of both
//!   binaries) a signal is deferred: it is recorded, the attach completes
//!   or fails as it would have (the library restores the target either
//!   way) and the caller then ends the run with the signal's exit code
//!   (128 + N). Further signals are deferred too: never abandon a target in
//!   the middle of an injection. `peeka-cli` says so on stderr at each one.
//! - **While a stream is followed** ([`cancel_on_interrupt`]) the first
//!   signal ends the stream cleanly (the agent removes the probe before it
//!   confirms the end); a second one exits at once with 128 + N.
//! - **Otherwise**, `peeka-cli` exits at once with 128 + N (nothing of
//!   Peeka's is in flight), and `peeka` records the signal for its loop,
//!   which quits as the user would, restoring the terminal
//!   ([`Idle::Record`], [`received`]).
//!
//! The handlers are signal-hook's: they only write to a pipe, and one
//! thread, `peeka-signals`, acts on what arrives. Its decisions and the
//! start and end of an attach take one lock, so a signal is either handled
//! before an attach starts or deferred until the attach is over, never
//! acted on in the middle of one.
#![allow(clippy::print_stderr)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use peeka_core::client::Canceller;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit_code::ExitCode;

/// A signal that ends a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: asked to terminate (`kill`, a supervisor).
    Terminate,
    /// SIGHUP: the terminal closed.
    HangUp,
}

impl Signal {
    fn from_raw(number: i32) -> Option<Self> {
        match number {
            SIGINT => Some(Self::Interrupt),
            SIGTERM => Some(Self::Terminate),
            SIGHUP => Some(Self::HangUp),
            _ => None,
        }
    }

    /// The signal's name, `SIGINT`, `SIGTERM` or `SIGHUP`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
            Self::HangUp => "SIGHUP",
        }
    }

    /// The conventional exit code after this signal: 128 + its number.
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            Self::Interrupt => ExitCode::Interrupted,
            Self::Terminate => ExitCode::Terminated,
            Self::HangUp => ExitCode::HungUp,
        }
    }
}

/// What a signal does when neither an attach nor a stream is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Exit at once with 128 + N (`peeka-cli`).
    Exit,
    /// Record it for [`received`] (`peeka`, whose loop quits cleanly).
    Record,
}

#[derive(Debug)]
struct State {
    idle: Idle,
    /// Attaches in progress.
    attaching: u32,
    /// The first signal that arrived during the attaches in progress.
    deferred: Option<Signal>,
    /// The first signal recorded under [`Idle::Record`].
    received: Option<Signal>,
    /// The stream a signal cancels.
    canceller: Option<Canceller>,
}

static STATE: Mutex<State> = Mutex::new(State {
    idle: Idle::Exit,
    attaching: 0,
    deferred: None,
    received: None,
    canceller: None,
});
static STREAM_SIGNALS: AtomicU32 = AtomicU32::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

fn state() -> MutexGuard<'static, State> {
    // The lock guards plain values, consistent even after a panic.
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes over SIGINT, SIGTERM and SIGHUP for the rest of the run, with
/// `idle` for when nothing is in progress. Whether the handlers are in
/// place (a second call changes only `idle`).
pub(crate) fn install(idle: Idle) -> bool {
    state().idle = idle;
    handlers_installed()
}

/// Installs the handlers and their thread, once; whether they are in place.
fn handlers_installed() -> bool {
    *INSTALLED.get_or_init(|| {
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return false;
        };
        std::thread::Builder::new()
            .name("peeka-signals".into())
            .spawn(move || {
                for number in signals.forever() {
                    if let Some(signal) = Signal::from_raw(number) {
                        on_signal(signal);
                    }
                }
            })
            .is_ok()
    })
}

fn on_signal(signal: Signal) {
    let mut state = state();
    if state.attaching > 0 {
        let first = state.deferred.is_none();
        state.deferred.get_or_insert(signal);
        let idle = state.idle;
        drop(state);
        if idle == Idle::Exit {
            // The terminal belongs to `peeka` under `Record`: it shows this.
            let again = if first { "" } else { " again" };
            eprintln!(
                "peeka-cli: {}{again}: finishing the attach safely; the target is being restored",
                signal.name()
            );
        }
        return;
    }
    let canceller = state.canceller.clone();
    if let Some(canceller) = canceller {
        if STREAM_SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            drop(state);
            canceller.cancel();
            return;
        }
    } else if state.idle == Idle::Record {
        state.received.get_or_insert(signal);
        return;
    }
    // The lock is still held: no attach can start before the exit.
    std::process::exit(i32::from(signal.exit_code().code()));
}

/// An attach in progress: signals wait until [`finish`](Self::finish) (or
/// the guard's drop).
#[derive(Debug)]
pub(crate) struct AttachGuard {
    finished: bool,
}

impl AttachGuard {
    /// Defers SIGINT, SIGTERM and SIGHUP from now on.
    pub(crate) fn begin() -> Self {
        state().attaching += 1;
        Self { finished: false }
    }

    /// Ends the deferral; the first signal that arrived meanwhile, which
    /// the caller must now act on (see [`Signal::exit_code`]).
    pub(crate) fn finish(mut self) -> Option<Signal> {
        self.finished = true;
        end_attach()
    }
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        if !self.finished {
            // Only a panic skips `finish`: the run ends with that anyway.
            let _ = end_attach();
        }
    }
}

fn end_attach() -> Option<Signal> {
    let mut state = state();
    state.attaching = state.attaching.saturating_sub(1);
    if state.attaching == 0 {
        state.deferred.take()
    } else {
        state.deferred
    }
}

/// The first signal recorded under [`Idle::Record`], if any.
pub(crate) fn received() -> Option<Signal> {
    state().received
}

/// Makes a signal cancel `canceller`'s stream until the guard is dropped.
pub(crate) fn cancel_on_interrupt(canceller: Canceller) -> InterruptGuard {
    handlers_installed();
    state().canceller = Some(canceller);
    InterruptGuard(())
}

/// Whether a signal cancelled the stream.
pub(crate) fn interrupted() -> bool {
    STREAM_SIGNALS.load(Ordering::SeqCst) > 0
}

/// Restores the default: a signal exits at once.
#[derive(Debug)]
pub(crate) struct InterruptGuard(());

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        state().canceller = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_its_conventional_exit_code() {
        for (number, name, code) in [
            (SIGINT, "SIGINT", 130),
            (SIGTERM, "SIGTERM", 143),
            (SIGHUP, "SIGHUP", 129),
        ] {
            let signal = Signal::from_raw(number).unwrap();
            assert_eq!(signal.name(), name);
            assert_eq!(i32::from(signal.exit_code().code()), 128 + number);
            assert_eq!(signal.exit_code().code(), code);
        }
        assert_eq!(Signal::from_raw(libc::SIGUSR1), None);
    }

    #[test]
    fn signals_during_an_attach_wait_for_its_end() {
        let guard = AttachGuard::begin();
        on_signal(Signal::Terminate);
        on_signal(Signal::Interrupt); // a second one: still deferred
        let nested = AttachGuard::begin();
        assert_eq!(nested.finish(), Some(Signal::Terminate));
        assert_eq!(guard.finish(), Some(Signal::Terminate));
        assert_eq!(AttachGuard::begin().finish(), None);
    }
}
