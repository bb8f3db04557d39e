//! The terminal while the TUI runs: raw mode and the alternate screen, and
//! their undoing on every way out (normal exit, error, panic).
//!
//! [`TerminalGuard`] sets the terminal up and restores it when dropped; a
//! panic hook installed by [`install_panic_hook`] restores it before the
//! panic message is printed, so the message lands on the user's normal
//! screen, readable, and the shell is usable afterwards. Restoring twice is
//! harmless.

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::Show;
use crossterm::event::{DisableBracketedPaste, DisableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// Whether the terminal is in the TUI's state (raw, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal the TUI draws on.
pub(crate) type Screen = Terminal<CrosstermBackend<Stdout>>;

/// Owns the terminal in the TUI's state; restores it when dropped.
pub(crate) struct TerminalGuard {
    terminal: Screen,
}

impl std::fmt::Debug for TerminalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalGuard")
    }
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen.
    ///
    /// # Errors
    /// When stdout is not a terminal or the terminal refuses a mode; the
    /// terminal is restored before returning.
    pub(crate) fn enter() -> io::Result<Self> {
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = (|| {
            let mut stdout = io::stdout();
            execute!(stdout, EnterAlternateScreen)?;
            let mut terminal = Terminal::new(CrosstermBackend::new(stdout))?;
            terminal.hide_cursor()?;
            terminal.clear()?;
            Ok(terminal)
        })();
        match setup {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// The terminal to draw on.
    pub(crate) fn screen(&mut self) -> &mut Screen {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen and raw mode and shows the cursor, if the
/// TUI had set them up. Safe to call more than once, from any thread.
pub(crate) fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut stdout = io::stdout();
    let _ = execute!(
        stdout,
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        Show
    );
    let _ = disable_raw_mode();
    let _ = stdout.flush();
}

/// Chains a panic hook that restores the terminal first, then reports the
/// panic as the previous hook would. A panic on another thread than the
/// UI's (a view's task on the runtime) then ends the process too (exit
/// code 101, as a panic of the main thread): the screen is gone, and the
/// agent removes the probes of a connection that closes.
pub(crate) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    let ui_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        let was_active = ACTIVE.load(Ordering::SeqCst);
        restore();
        previous(info);
        if was_active && std::thread::current().id() != ui_thread {
            std::process::exit(101);
        }
    }));
}
