//! View 8, threads: every thread of the target with its state, CPU use and
//! where it is, refreshed every two seconds while on screen; the selected
//! thread's stack below (`thread --tid`), fetched when the selection
//! changes, on Enter, and with `r`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{StackFrame, ThreadEntry, ThreadReport, ThreadRequest, ThreadState};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// How often the list is read again while on screen.
const REFRESH: Duration = Duration::from_secs(2);
/// The window over which the agent measures CPU use.
const CPU_WINDOW_MS: u32 = 200;

enum Reply {
    List(Result<ThreadReport, String>),
    Detail(u64, Result<ThreadReport, String>),
}

/// The threads view.
pub(crate) struct ThreadsView {
    threads: Vec<ThreadEntry>,
    selected: usize,
    detail: Option<ThreadEntry>,
    error: Option<String>,
    list_in_flight: bool,
    detail_in_flight: bool,
    detail_wanted: Option<u64>,
    listed_at: Option<Instant>,
    interval_ms: u64,
    tx: mpsc::Sender<Reply>,
    rx: mpsc::Receiver<Reply>,
}

impl std::fmt::Debug for ThreadsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadsView")
            .field("threads", &self.threads.len())
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl ThreadsView {
    /// An empty view; it lists the threads when first on screen.
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            threads: Vec::new(),
            selected: 0,
            detail: None,
            error: None,
            list_in_flight: false,
            detail_in_flight: false,
            detail_wanted: None,
            listed_at: None,
            interval_ms: u64::from(CPU_WINDOW_MS),
            tx,
            rx,
        }
    }

    fn selected_tid(&self) -> Option<u64> {
        self.threads.get(self.selected).map(|t| t.tid)
    }

    fn request_list(&mut self, ctx: &Ctx) {
        if self.list_in_flight {
            return;
        }
        self.list_in_flight = true;
        self.listed_at = Some(Instant::now());
        let session = ctx.session.clone();
        let tx = self.tx.clone();
        ctx.runtime.spawn(async move {
            let request = ThreadRequest::list().interval_ms(CPU_WINDOW_MS);
            let reply = session.thread(&request).await.map_err(|e| e.to_string());
            let _ = tx.send(Reply::List(reply));
        });
    }

    fn request_detail(&mut self, ctx: &Ctx, tid: u64) {
        self.detail_in_flight = true;
        let session = ctx.session.clone();
        let tx = self.tx.clone();
        ctx.runtime.spawn(async move {
            let request = ThreadRequest::detail(tid).interval_ms(CPU_WINDOW_MS);
            let reply = session.thread(&request).await.map_err(|e| e.to_string());
            let _ = tx.send(Reply::Detail(tid, reply));
        });
    }

    /// Takes a list answer, keeping the selected thread selected.
    fn set_threads(&mut self, report: ThreadReport) {
        let keep = self.selected_tid();
        self.interval_ms = report.interval_ms;
        self.threads = report.entries().into_iter().cloned().collect();
        self.selected = keep
            .and_then(|tid| self.threads.iter().position(|t| t.tid == tid))
            .unwrap_or(0)
            .min(self.threads.len().saturating_sub(1));
        if self.detail.is_none() || keep != self.selected_tid() {
            self.detail_wanted = self.selected_tid();
        }
    }

    fn select(&mut self, index: usize) {
        let index = index.min(self.threads.len().saturating_sub(1));
        if index != self.selected {
            self.selected = index;
            self.detail_wanted = self.selected_tid();
        }
    }

    fn render_list(&self, frame: &mut Frame<'_>, area: Rect) {
        let rows: Vec<Row<'_>> = self
            .threads
            .iter()
            .map(|t| {
                Row::new(vec![
                    Cell::from(t.tid.to_string()),
                    Cell::from(Span::styled(t.name.clone(), theme::name())),
                    Cell::from(Span::styled(t.state.as_str(), state_style(t.state))),
                    Cell::from(theme::percent(t.cpu_percent)),
                    Cell::from(t.cpu_time.map_or("-".into(), |s| format!("{s:.2}s"))),
                    Cell::from(match t.daemon {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "-",
                    }),
                    Cell::from(t.top_frame.as_ref().map_or_else(String::new, frame_text)),
                ])
            })
            .collect();
        let header = Row::new(["TID", "NAME", "STATE", "CPU", "CPU TIME", "DAEMON", "WHERE"])
            .style(theme::header());
        let title = format!(
            " threads ({}, CPU over {} ms){} ",
            self.threads.len(),
            self.interval_ms,
            if self.list_in_flight {
                " · refreshing"
            } else {
                ""
            }
        );
        let widths = [
            Constraint::Length(16),
            Constraint::Length(16),
            Constraint::Length(13),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Min(10),
        ];
        let mut state = TableState::default()
            .with_selected((!self.threads.is_empty()).then_some(self.selected));
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header)
                .block(Block::default().borders(Borders::ALL).title(title))
                .row_highlight_style(theme::selected()),
            area,
            &mut state,
        );
    }

    fn render_stack(&self, frame: &mut Frame<'_>, area: Rect) {
        let selected = self.threads.get(self.selected);
        let shown = self
            .detail
            .as_ref()
            .filter(|d| Some(d.tid) == selected.map(|t| t.tid));
        let title = match (selected, shown) {
            (Some(t), _) => format!(" stack of {} ({}) ", t.name, t.tid),
            (None, _) => " stack ".to_owned(),
        };
        let mut lines = Vec::new();
        if let Some(error) = &self.error {
            lines.push(Line::from(Span::styled(
                format!("error: {error}"),
                theme::error(),
            )));
        }
        match shown.and_then(|d| d.stack.as_ref()) {
            Some(stack) if stack.is_empty() => {
                lines.push(Line::from(Span::styled("no Python frames", theme::dim())));
            }
            Some(stack) => {
                for (depth, frame) in stack.iter().enumerate() {
                    lines.push(Line::from(vec![
                        Span::styled(format!("{depth:>3} "), theme::dim()),
                        Span::styled(frame.function.clone(), theme::name()),
                        Span::styled(
                            format!("  {}:{}", frame.filename, frame.lineno),
                            theme::dim(),
                        ),
                    ]));
                }
            }
            None if selected.is_some() => {
                lines.push(Line::from(Span::styled("reading the stack…", theme::dim())));
            }
            None => {
                let text = if self.listed_at.is_none() || self.list_in_flight {
                    "reading the threads…"
                } else {
                    "no threads"
                };
                lines.push(Line::from(Span::styled(text, theme::dim())));
            }
        }
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
            area,
        );
    }
}

/// `function  file:line` of a frame, file shortened to its last parts.
pub(crate) fn frame_text(frame: &StackFrame) -> String {
    format!(
        "{}  {}:{}",
        frame.function,
        short_path(&frame.filename),
        frame.lineno
    )
}

/// The last two components of a path (`lib/shop.py`).
pub(crate) fn short_path(path: &str) -> String {
    let parts: Vec<&str> = path.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// A colour per thread state.
pub(crate) fn state_style(state: ThreadState) -> Style {
    match state {
        ThreadState::Runnable => theme::good(),
        ThreadState::Waiting | ThreadState::TimedWaiting => Style::default(),
        _ => theme::warn(),
    }
}

impl View for ThreadsView {
    fn title(&self) -> &'static str {
        "threads"
    }

    fn hints(&self) -> &'static str {
        "↑↓ select  enter: stack  r: refresh"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [list, stack] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
        self.render_list(frame, list);
        self.render_stack(frame, stack);
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome {
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected + 1),
            KeyCode::PageUp => self.select(self.selected.saturating_sub(10)),
            KeyCode::PageDown => self.select(self.selected + 10),
            KeyCode::Home => self.select(0),
            KeyCode::End => self.select(usize::MAX),
            KeyCode::Enter => self.detail_wanted = self.selected_tid(),
            KeyCode::Char('r') => {
                self.request_list(ctx);
                self.detail_wanted = self.selected_tid();
            }
            _ => return KeyOutcome::Ignored,
        }
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, ctx: &Ctx, visible: bool) {
        for _ in 0..16 {
            let Ok(reply) = self.rx.try_recv() else { break };
            match reply {
                Reply::List(Ok(report)) => {
                    self.list_in_flight = false;
                    self.error = None;
                    self.set_threads(report);
                }
                Reply::List(Err(e)) => {
                    self.list_in_flight = false;
                    self.error = Some(format!("{e} (r retries)"));
                }
                Reply::Detail(tid, Ok(report)) => {
                    self.detail_in_flight = false;
                    self.detail = report.entries().into_iter().find(|t| t.tid == tid).cloned();
                }
                Reply::Detail(_, Err(e)) => {
                    self.detail_in_flight = false;
                    // A thread that ended between the list and the detail.
                    self.error = Some(format!("{e} (r refreshes the list)"));
                }
            }
        }
        if !visible {
            return;
        }
        if self.listed_at.is_none_or(|at| at.elapsed() >= REFRESH) {
            self.request_list(ctx);
        }
        if !self.detail_in_flight {
            if let Some(tid) = self.detail_wanted.take() {
                self.request_detail(ctx, tid);
            }
        }
    }

    fn stop(&mut self) {
        // Requests only, no stream: nothing stays in the target.
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn frame(function: &str, filename: &str, lineno: u32) -> StackFrame {
        serde_json::from_value(serde_json::json!({
            "filename": filename, "lineno": lineno, "function": function
        }))
        .unwrap()
    }

    /// Three threads of a small service, as the agent describes them.
    pub(crate) fn report() -> ThreadReport {
        serde_json::from_value(serde_json::json!({
            "action": "list", "total": 3, "interval_ms": 200,
            "threads": [
                {"tid": 140001, "native_id": 51, "name": "MainThread", "daemon": false, "alive": true,
                 "state": "RUNNABLE", "cpu_time": 12.5, "cpu_percent": 71.5, "stack_depth": 4,
                 "top_frame": {"filename": "/srv/shop/orders.py", "lineno": 41, "function": "place_order"}},
                {"tid": 140002, "native_id": 52, "name": "restocker", "daemon": true, "alive": true,
                 "state": "TIMED_WAITING", "cpu_time": 0.25, "cpu_percent": 0.0, "stack_depth": 2,
                 "top_frame": {"filename": "/srv/shop/stock.py", "lineno": 12, "function": "restocker"}},
                {"tid": 140003, "native_id": 53, "name": "mailer", "daemon": true, "alive": true,
                 "state": "WAITING", "cpu_time": 0.01, "cpu_percent": null, "stack_depth": 3,
                 "top_frame": {"filename": "/usr/lib/python3.12/queue.py", "lineno": 171, "function": "get"}}
            ]
        }))
        .unwrap()
    }

    fn view() -> ThreadsView {
        let mut view = ThreadsView::new();
        view.listed_at = Some(Instant::now());
        view.set_threads(report());
        let mut main = view.threads[0].clone();
        main.stack = Some(vec![
            frame("place_order", "/srv/shop/orders.py", 41),
            frame("handle", "/srv/shop/server.py", 88),
            frame("main", "/srv/shop/server.py", 120),
            frame("<module>", "/srv/shop/__main__.py", 3),
        ]);
        view.detail = Some(main);
        view
    }

    #[test]
    fn the_list_and_the_selected_threads_stack() {
        let mut view = view();
        let screen = draw_to_text(100, 16, |frame, area| view.render(frame, area));
        assert_screen("threads", &screen);
    }

    #[test]
    fn moving_the_selection_asks_for_that_threads_stack() {
        let mut view = view();
        view.detail_wanted = None;
        view.select(2);
        assert_eq!(view.detail_wanted, Some(140003));
        let screen = draw_to_text(100, 16, |frame, area| view.render(frame, area));
        assert!(screen.contains("stack of mailer (140003)"), "{screen}");
        assert!(screen.contains("reading the stack…"), "{screen}");
        // A refresh keeps the selection on the same thread.
        view.set_threads(report());
        assert_eq!(view.selected_tid(), Some(140003));
    }

    #[test]
    fn paths_are_shortened_to_their_last_two_parts() {
        assert_eq!(
            short_path("/usr/lib/python3.12/queue.py"),
            "python3.12/queue.py"
        );
        assert_eq!(short_path("shop.py"), "shop.py");
    }
}
