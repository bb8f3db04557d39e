//! The contract between the TUI's application loop and its views.
//!
//! A view owns its state, draws it, takes the keys the application does not
//! take, and talks to the target only through [`Ctx`]: it spawns tasks on
//! `ctx.runtime` that use `ctx.session` and send their results back over a
//! channel the view drains in [`View::on_tick`]. So drawing never waits on
//! the target, and a view can be tested by filling its state directly.

use std::sync::Arc;

use crossterm::event::KeyEvent;
use peeka_core::client::AsyncSession;
use ratatui::layout::Rect;
use ratatui::Frame;

/// What every view may use to reach the target.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The session to the attached agent; methods take `&self`.
    pub(crate) session: Arc<AsyncSession>,
    /// The runtime the session lives on; spawn the view's work here.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Whether a view used a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOutcome {
    /// The view used the key.
    Consumed,
    /// The view had no use for it.
    Ignored,
}

/// One screen of the TUI (dashboard, watch, trace, ...).
pub(crate) trait View {
    /// The name shown in the tab bar and the help screen ("watch").
    fn title(&self) -> &'static str;

    /// Key hints for the status line of this view ("enter: start  s: stop").
    fn hints(&self) -> &'static str;

    /// Draws the view into `area`. Reads only the view's own state; never
    /// blocks.
    fn render(&mut self, frame: &mut Frame<'_>, area: Rect);

    /// A key the application did not take. The application takes the
    /// number keys, `?`, `q` and Ctrl-C, except while
    /// [`is_editing`](View::is_editing) is true (then only Ctrl-C).
    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome;

    /// Called before every draw (at least ten times a second): drain the
    /// view's channels (a bounded amount per call, so a flood cannot make
    /// the UI unresponsive) and start periodic refreshes when `visible`.
    fn on_tick(&mut self, ctx: &Ctx, visible: bool);

    /// True while a text box of the view has the focus.
    fn is_editing(&self) -> bool {
        false
    }

    /// Stops every stream the view started, so the agent removes its
    /// probes. Called when the TUI exits; must not block.
    fn stop(&mut self);
}
