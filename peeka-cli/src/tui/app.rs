//! The application loop: the picker until a session is attached, then the
//! workspace of views (a tab bar, the view on screen, a status line, the
//! `?` help overlay), key routing, ticks and redraws, and quitting cleanly.
//!
//! The loop runs on the main thread and never waits on the target: views
//! start their work on the runtime and drain results in `on_tick`, ten
//! times a second, a bounded amount each; keys are handled as they come
//! and the screen is drawn once per turn of the loop (after the keys of
//! that turn, or the tick), so a flood of observations costs at most a
//! bounded drain per tick and the keyboard stays responsive.
//!
//! Quitting stops every view's streams (each cancels its subscriptions),
//! then confirms with a `ping`: the agent applies a connection's messages
//! in order, so once the ping is answered the cancels before it have ended
//! their streams and removed their probes. The agent itself stays attached
//! for the next client, as with `peeka-cli`.
//!
//! Quitting (a key, or SIGINT, SIGTERM or SIGHUP, which the loop picks up
//! from [`interrupt::received`]) never abandons an attach in progress: the
//! picker shows that the attach is being finished safely, and the TUI
//! quits once it completed or failed, saying how the target was left. A
//! signal ends `peeka` with its exit code (128 + N).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use peeka_core::client::AttachReport;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::picker::{centered, hint_spans, Attached, Picker, PickerKey};
use super::terminal::Screen;
use super::view::{Ctx, KeyOutcome, View};
use super::{theme, views, TuiArgs};
use crate::exit_code::ExitCode;
use crate::interrupt::{self, Signal};
use crate::remembered;

/// Time between ticks (drains, periodic refreshes, redraws).
const TICK: Duration = Duration::from_millis(100);
/// Events handled per turn of the loop before drawing again.
const EVENTS_PER_TURN: usize = 64;
/// How long quitting waits for the agent to confirm the cancels.
const CONFIRM_WAIT: Duration = Duration::from_secs(3);

/// How the TUI ended: the exit code, and a line for the normal screen.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) code: ExitCode,
    pub(crate) message: Option<String>,
}

/// The views, one per number key, in the order of the keys 1..9, 0.
pub(crate) fn all_views() -> Vec<Box<dyn View>> {
    vec![
        Box::new(views::dashboard::DashboardView::new()),
        Box::new(views::watch::WatchView::new()),
        Box::new(views::trace::TraceView::new()),
        Box::new(views::stack::StackView::new()),
        Box::new(views::monitor::MonitorView::new()),
        Box::new(views::top::TopView::new()),
        Box::new(views::memory::MemoryView::new()),
        Box::new(views::threads::ThreadsView::new()),
        Box::new(views::logger::LoggerView::new()),
        Box::new(views::inspect::InspectView::new()),
    ]
}

/// The key that shows the view at `index` (1..9, then 0).
pub(crate) fn view_key(index: usize) -> char {
    char::from(b'0' + ((index + 1) % 10) as u8)
}

/// What each view is for, for the help screen (by title).
fn purpose(title: &str) -> &'static str {
    match title {
        "dashboard" => "threads, memory and hot functions, refreshed live",
        "watch" => "calls of a function: arguments, result, exception, cost",
        "trace" => "the call tree below a function, coloured by time",
        "stack" => "who calls a function: the stack of each call",
        "monitor" => "calls, failures and latency of a function, per interval",
        "top" => "the hot functions, sampled live",
        "memory" => "memory overview, tracemalloc top and diff",
        "threads" => "every thread with its CPU use, and one thread's stack",
        "logger" => "the loggers and their levels; change a level",
        "inspect" => "browse a value by its path",
        _ => "",
    }
}

/// The attached workspace.
struct Workspace {
    ctx: Ctx,
    views: Vec<Box<dyn View>>,
    current: usize,
    help: bool,
    summary: String,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("current", &self.current)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Phase {
    Picking(Box<Picker>),
    Working(Box<Workspace>),
}

/// The TUI: picker, then workspace.
#[derive(Debug)]
pub(crate) struct App {
    runtime: tokio::runtime::Handle,
    phase: Phase,
    /// Why the user wants to leave, once they do.
    quitting: Option<Quit>,
    /// The quit came while an attach was in progress.
    quit_during_attach: bool,
}

/// What a key asked of the application.
enum Action {
    None,
    Quit,
}

/// Why `peeka` quits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quit {
    /// A key (q, Esc, Ctrl-C in raw mode).
    Key,
    /// A signal (SIGINT, SIGTERM, SIGHUP).
    Signal(Signal),
}

impl App {
    /// The app for `args`: the picker, already attaching when a pid was given.
    pub(crate) fn new(args: &TuiArgs, runtime: tokio::runtime::Handle) -> Self {
        let mut picker = Picker::new(
            runtime.clone(),
            args.method,
            args.timeout,
            remembered::load().ok(),
        );
        if let Some(pid) = args.pid {
            picker.attach_now(pid);
        }
        Self {
            runtime,
            phase: Phase::Picking(Box::new(picker)),
            quitting: None,
            quit_during_attach: false,
        }
    }

    /// Runs until the user quits (or a signal asks to), never in the
    /// middle of an attach.
    ///
    /// # Errors
    /// When the terminal cannot be read or drawn on.
    pub(crate) fn run(mut self, screen: &mut Screen) -> std::io::Result<Ended> {
        let mut next_tick = Instant::now();
        loop {
            if let Some(signal) = interrupt::received() {
                self.request_quit(Quit::Signal(signal));
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
            if let Some(quit) = self.quitting {
                if !self.attach_in_progress() {
                    return Ok(self.quit(quit));
                }
            }
            screen.draw(|frame| self.render(frame))?;
            let wait = next_tick.saturating_duration_since(Instant::now());
            if event::poll(wait)? {
                for _ in 0..EVENTS_PER_TURN {
                    if let Action::Quit = self.on_event(event::read()?) {
                        self.request_quit(Quit::Key);
                        break;
                    }
                    if !event::poll(Duration::ZERO)? {
                        break;
                    }
                }
            }
        }
    }

    /// Whether the picker's attach is still running.
    fn attach_in_progress(&self) -> bool {
        matches!(&self.phase, Phase::Picking(picker) if picker.is_attaching())
    }

    /// Records why the user wants to leave (a signal outranks a key: it
    /// decides the exit code); an attach in progress is finished first.
    fn request_quit(&mut self, quit: Quit) {
        if !matches!(self.quitting, Some(Quit::Signal(_))) {
            self.quitting = Some(quit);
        }
        if let Phase::Picking(picker) = &mut self.phase {
            if picker.is_attaching() {
                self.quit_during_attach = true;
                picker.finish_attach_then_quit();
            }
        }
    }

    fn tick(&mut self) {
        match &mut self.phase {
            Phase::Picking(picker) => {
                if let Some(attached) = picker.on_tick() {
                    self.phase =
                        Phase::Working(Box::new(Workspace::new(attached, self.runtime.clone())));
                }
            }
            Phase::Working(workspace) => workspace.tick(),
        }
    }

    fn on_event(&mut self, event: Event) -> Action {
        let Event::Key(key) = event else {
            // Resizes need nothing: the next draw lays out for the new size.
            return Action::None;
        };
        if key.kind != KeyEventKind::Press {
            return Action::None;
        }
        match &mut self.phase {
            Phase::Picking(picker) => match picker.on_key(key) {
                PickerKey::Quit => Action::Quit,
                PickerKey::Handled => Action::None,
            },
            Phase::Working(workspace) => workspace.on_key(key),
        }
    }

    fn render(&mut self, frame: &mut Frame<'_>) {
        let area = frame.area();
        match &mut self.phase {
            Phase::Picking(picker) => picker.render(frame, area),
            Phase::Working(workspace) => workspace.render(frame, area),
        }
    }

    fn quit(self, quit: Quit) -> Ended {
        let mut ended = match self.phase {
            Phase::Picking(picker) => Ended {
                code: ExitCode::Success,
                message: picker.attach_failure().filter(|_| self.quit_during_attach).map(
                    |(pid, error)| {
                        format!(
                            "peeka: the attach to process {pid} was interrupted; it was finished safely and process {pid} was left as it was (the attach ended with: {})",
                            error.replace('\n', " ")
                        )
                    },
                ),
            },
            Phase::Working(workspace) => workspace.close(&self.runtime),
        };
        if let Quit::Signal(signal) = quit {
            ended.code = signal.exit_code();
            let what = format!("peeka: {} received", signal.name());
            ended.message = Some(match ended.message {
                Some(message) => format!("{what}; {}", message.trim_start_matches("peeka: ")),
                None => what,
            });
        }
        ended
    }
}

impl Workspace {
    fn new(attached: Attached, runtime: tokio::runtime::Handle) -> Self {
        let Attached { session, report } = attached;
        remembered::save(report.pid);
        Self {
            summary: summary(&report),
            ctx: Ctx {
                session: Arc::new(session),
                runtime,
            },
            views: all_views(),
            current: 0,
            help: false,
        }
    }

    fn tick(&mut self) {
        let current = self.current;
        for (index, view) in self.views.iter_mut().enumerate() {
            view.on_tick(&self.ctx, index == current && !self.help);
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        let editing = self
            .views
            .get(self.current)
            .is_some_and(|view| view.is_editing());
        if self.help {
            match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Char(c @ '0'..='9') => self.switch_to(c),
                _ => self.help = false,
            }
            return Action::None;
        }
        if !editing && !ctrl {
            match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Char('?') => {
                    self.help = true;
                    return Action::None;
                }
                KeyCode::Char(c @ '0'..='9') => {
                    self.switch_to(c);
                    return Action::None;
                }
                _ => {}
            }
        }
        if let Some(view) = self.views.get_mut(self.current) {
            if view.on_key(key, &self.ctx) == KeyOutcome::Ignored && key.code == KeyCode::Tab {
                self.current = (self.current + 1) % self.views.len();
            }
        }
        Action::None
    }

    fn switch_to(&mut self, key: char) {
        if let Some(index) = (0..self.views.len()).find(|&i| view_key(i) == key) {
            self.current = index;
            self.help = false;
        }
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [tabs, body, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(tab_line(&self.views, self.current)), tabs);
        if let Some(view) = self.views.get_mut(self.current) {
            view.render(frame, body);
        }
        frame.render_widget(Paragraph::new(self.status_line()), status);
        if self.help {
            render_help(frame, area, &self.views, self.current);
        }
    }

    fn status_line(&self) -> Line<'static> {
        if let Some(lost) = self.ctx.session.disconnection() {
            return Line::from(vec![
                Span::styled("connection lost: ", theme::error()),
                Span::raw(lost.to_string()),
                Span::styled("  q quits", theme::dim()),
            ]);
        }
        let hints = self
            .views
            .get(self.current)
            .map(|view| view.hints())
            .unwrap_or("");
        let mut spans = vec![Span::styled(hints.to_owned(), theme::dim())];
        spans.push(Span::raw("  "));
        spans.extend(hint_spans(&[("?", "help"), ("q", "quit")]));
        spans.push(Span::styled(format!("  {}", self.summary), theme::name()));
        Line::from(spans)
    }

    /// Stops every view's streams, confirms with the agent, and says how
    /// the target was left.
    fn close(mut self, runtime: &tokio::runtime::Handle) -> Ended {
        for view in &mut self.views {
            view.stop();
        }
        let pid = self.ctx.session.pid();
        if self.ctx.session.disconnection().is_some() {
            return Ended {
                code: ExitCode::NoTarget,
                message: Some(format!(
                    "peeka: the connection to process {pid} was lost; nothing of peeka's is left in it"
                )),
            };
        }
        let session = Arc::clone(&self.ctx.session);
        let confirmed = runtime
            .block_on(async move { tokio::time::timeout(CONFIRM_WAIT, session.ping()).await });
        let message = match confirmed {
            Ok(Ok(_)) => format!(
                "peeka: process {pid} keeps its agent, with no probe of peeka's; `peeka-cli detach --pid {pid}` removes the agent"
            ),
            _ => format!(
                "peeka: process {pid} did not confirm the end of peeka's streams; the agent removes their probes as the connection closes"
            ),
        };
        Ended {
            code: ExitCode::Success,
            message: Some(message),
        }
    }
}

/// The tab bar: `peeka`, then each view with its key, the current one
/// highlighted.
fn tab_line(views: &[Box<dyn View>], current: usize) -> Line<'static> {
    let mut spans = vec![Span::styled("peeka ", theme::header())];
    for (index, view) in views.iter().enumerate() {
        let label = format!(" {} {} ", view_key(index), view.title());
        let style = if index == current {
            theme::active_tab()
        } else {
            Style::default()
        };
        spans.push(Span::styled(label, style));
    }
    Line::from(spans)
}

/// The `?` overlay: the views with their keys, the keys that work
/// everywhere, and the current view's keys.
fn render_help(frame: &mut Frame<'_>, area: Rect, views: &[Box<dyn View>], current: usize) {
    let mut lines = vec![Line::from(Span::styled("views", theme::header()))];
    for (index, view) in views.iter().enumerate() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {}  ", view_key(index)), theme::key()),
            Span::styled(format!("{:<10}", view.title()), theme::name()),
            Span::raw(purpose(view.title())),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("everywhere", theme::header())));
    for (key, what) in [
        ("1-0", "switch view (while no text box has the focus)"),
        ("?", "this help; any key closes it"),
        (
            "q",
            "quit: stops every view's streams and probes; the agent stays",
        ),
        ("ctrl-c", "quit, even while typing"),
        ("tab", "next view, when the view has no use for it"),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("  {key:<8}"), theme::key()),
            Span::raw(what),
        ]));
    }
    if let Some(view) = views.get(current) {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!("in {}", view.title()),
            theme::header(),
        )));
        lines.push(Line::from(format!("  {}", view.hints())));
    }
    let width = area.width.saturating_sub(4).min(100);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let height = u16::try_from(rows + 2).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" help ")),
        popup,
    );
}

/// `pid 1234 · Python 3.12.1 · attached with ptrace in 120ms`.
fn summary(report: &AttachReport) -> String {
    let how = match report.method {
        Some(method) => format!(
            "attached with {method} in {}",
            theme::duration_ms(report.timeline.total().as_secs_f64() * 1000.0)
        ),
        None => "agent reused".to_owned(),
    };
    format!("pid {} · Python {} · {how}", report.pid, report.python)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    #[test]
    fn number_keys_follow_the_view_order() {
        assert_eq!(view_key(0), '1');
        assert_eq!(view_key(8), '9');
        assert_eq!(view_key(9), '0');
    }

    #[test]
    fn the_tab_bar_and_the_help_list_every_view_with_its_key() {
        let views = all_views();
        let screen = draw_to_text(120, 30, |frame, area| {
            frame.render_widget(Paragraph::new(tab_line(&views, 1)), area);
            render_help(frame, area, &views, 1);
        });
        assert_screen("app_help", &screen);
    }

    #[test]
    fn every_view_draws_at_any_size_without_panicking() {
        for (width, height) in [(0, 0), (1, 1), (12, 4), (40, 10), (80, 24), (250, 70)] {
            for mut view in all_views() {
                draw_to_text(width, height, |frame, area| view.render(frame, area));
            }
            let views = all_views();
            draw_to_text(width, height, |frame, area| {
                render_help(frame, area, &views, 0)
            });
        }
    }

    #[test]
    fn every_view_has_a_purpose_for_the_help_screen() {
        for view in all_views() {
            assert!(!purpose(view.title()).is_empty(), "{}", view.title());
        }
    }
}
