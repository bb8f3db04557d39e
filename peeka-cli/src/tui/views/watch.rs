//! View 2, watch: the calls of the functions a pattern names, streaming
//! into a table (time, function, cost, result or exception), with a detail
//! pane for the selected call (arguments, `self`, result, exception, cost),
//! scrolled when the call is longer than the pane.
//!
//! The stream is followed by a task that hands observations over a bounded
//! channel (a full channel drops and counts them, it never waits); the view
//! drains a bounded number per tick into a ring of the last
//! [`RING`] calls, so a flood of calls costs bounded memory and time per
//! frame and the keys stay responsive. Drops are counted where they happen:
//! in the agent and the client (gaps in `seq`) and at the view's channel.
//! `s` (or quitting) cancels the stream; the agent removes the probe.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent};
use futures_util::StreamExt;
use peeka_core::client::{AsyncSession, Location, StreamItem, WatchObservation, WatchRequest};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::tui::line_edit::{EditEvent, LineEdit};
use crate::tui::pattern_input::{self, InputEvent, PatternInput};
use crate::tui::picker::spinner;
use crate::tui::stream_control::StreamControl;
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Calls kept (the oldest go first).
pub(crate) const RING: usize = 5000;
/// Messages the channel from the task holds before it drops observations.
const CHANNEL: usize = 4096;
/// Messages taken from the channel per tick.
const DRAIN_PER_TICK: usize = 2000;
/// Most bytes per captured observation asked of the agent (bounds the ring).
const MAX_BYTES: u32 = 16 * 1024;

/// What the task following a stream tells the view.
#[derive(Debug)]
enum Message {
    Started {
        matched: Vec<String>,
        backend: Option<String>,
    },
    Observation(u64, Box<WatchObservation>),
    Event(String),
    Ended {
        reason: String,
        dropped: u64,
        client_dropped: u64,
    },
    Failed(String),
}

/// One call in the ring, with its one-line renderings made once.
#[derive(Debug)]
struct Call {
    id: u64,
    time: String,
    summary: String,
    haystack: String,
    observation: WatchObservation,
}

impl Call {
    fn new(id: u64, observation: WatchObservation) -> Self {
        let summary = outcome_summary(&observation);
        let haystack = format!(
            "{} {} {} {} {}",
            observation.func_name,
            summary,
            observation.params,
            observation.kwargs,
            observation.thread_name
        )
        .to_lowercase();
        Self {
            id,
            time: theme::clock(observation.timestamp),
            summary,
            haystack,
            observation,
        }
    }
}

/// `=> 30`, `!! ValueError: ...` or `-> (entry)`.
fn outcome_summary(o: &WatchObservation) -> String {
    match o.location {
        Location::AtEnter => format!("-> {}", theme::value_line(&o.params)),
        Location::AtExceptionExit => format!("!! {}", theme::value_line(&o.throw_exp)),
        _ => format!("=> {}", theme::value_line(&o.return_obj)),
    }
}

/// Where the watch is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Opening,
    Watching {
        matched: Vec<String>,
        backend: Option<String>,
    },
    Stopping,
    Ended(String),
    Failed(String),
}

/// The stream being followed.
#[derive(Debug)]
struct Running {
    control: StreamControl,
    rx: mpsc::Receiver<Message>,
    view_dropped: Arc<AtomicU64>,
}

/// How far the detail pane is scrolled, and what the last frame drew in it
/// (the call, the rows it had, the wrapped lines of the call) so that the
/// keys know the page size and the end.
#[derive(Debug, Default)]
struct DetailScroll {
    /// The id of the call shown; another call starts at the top.
    call: Option<u64>,
    /// The first wrapped line shown (0-based).
    top: usize,
    /// Rows inside the pane's border.
    height: usize,
    /// Wrapped lines of the call's detail; `None` until a frame measures
    /// the call.
    total: Option<usize>,
}

impl DetailScroll {
    /// The last `top` that still fills the pane (no limit while the call
    /// is not measured yet).
    fn max_top(&self) -> usize {
        self.total
            .map_or(usize::MAX, |total| total.saturating_sub(self.height))
    }

    /// Scrolls the detail of `call` by `delta` lines; a call other than the
    /// one drawn last starts from the top (its size is known only at the
    /// next frame, which clamps).
    fn scroll(&mut self, call: Option<u64>, delta: isize) {
        if self.call == call {
            self.top = self.top.saturating_add_signed(delta).min(self.max_top());
        } else {
            self.call = call;
            self.total = None;
            self.top = 0usize.saturating_add_signed(delta);
        }
    }

    /// Scrolls by a page: the pane's height minus one line, so that one
    /// line stays in view.
    fn page(&mut self, call: Option<u64>, down: bool) {
        let step = isize::try_from(self.height.saturating_sub(1).max(1)).unwrap_or(isize::MAX);
        self.scroll(call, if down { step } else { -step });
    }

    /// Takes the sizes of the frame being drawn: back to the top for
    /// another call, and never past the end.
    fn fit(&mut self, call: Option<u64>, height: usize, total: usize) {
        if self.call != call {
            self.call = call;
            self.top = 0;
        }
        self.height = height;
        self.total = Some(total);
        self.top = self.top.min(self.max_top());
    }

    /// ` call `, or ` call · lines 12-40 of 95 ` when the detail is longer
    /// than the pane (wrapped lines, counted from 1).
    fn title(&self) -> String {
        match self.total {
            Some(total) if self.height > 0 && total > self.height => {
                let last = (self.top + self.height).min(total);
                format!(" call · lines {}-{last} of {total} ", self.top + 1)
            }
            _ => " call ".to_owned(),
        }
    }
}

/// Which text box has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Focus {
    None,
    Pattern,
    Condition,
    Filter,
}

/// The watch view.
#[derive(Debug)]
pub(crate) struct WatchView {
    pattern: PatternInput,
    condition: LineEdit,
    filter: LineEdit,
    before: bool,
    exception: bool,
    success: bool,
    finish: bool,
    depth: u32,
    state: State,
    started: Instant,
    watched: String,
    running: Option<Running>,
    calls: VecDeque<Call>,
    next_id: u64,
    seen: u64,
    last_seq: Option<u64>,
    gaps: u64,
    view_dropped: u64,
    condition_errors: u64,
    selected: Option<u64>,
    follow: bool,
    offset: usize,
    /// The detail pane's scroll (PgDn, PgUp, `J`, `K`).
    detail: DetailScroll,
}

impl WatchView {
    /// An idle view: no pattern yet.
    pub(crate) fn new() -> Self {
        Self {
            pattern: PatternInput::new(
                "module.function or module.Class.method (e edits, tab completes)",
            ),
            condition: LineEdit::new(),
            filter: LineEdit::new(),
            before: false,
            exception: false,
            success: false,
            finish: false,
            depth: 1,
            state: State::Idle,
            started: Instant::now(),
            watched: String::new(),
            running: None,
            calls: VecDeque::new(),
            next_id: 0,
            seen: 0,
            last_seq: None,
            gaps: 0,
            view_dropped: 0,
            condition_errors: 0,
            selected: None,
            follow: true,
            offset: 0,
            detail: DetailScroll::default(),
        }
    }

    fn focus(&self) -> Focus {
        if self.pattern.is_focused() {
            Focus::Pattern
        } else if self.condition.is_focused() {
            Focus::Condition
        } else if self.filter.is_focused() {
            Focus::Filter
        } else {
            Focus::None
        }
    }

    /// The request the options describe.
    fn request(&self, pattern: &str) -> WatchRequest {
        let mut request = WatchRequest::new(pattern)
            .before(self.before)
            .exception(self.exception)
            .success(self.success)
            .finish(self.finish)
            .depth(self.depth)
            .max_bytes(MAX_BYTES);
        let condition = self.condition.text().trim();
        if !condition.is_empty() {
            request = request.condition(condition);
        }
        request
    }

    fn start(&mut self, ctx: &Ctx) {
        let Some(pattern) = self.pattern.value_or_focus() else {
            return;
        };
        self.stop_stream();
        let request = self.request(&pattern);
        let control = StreamControl::new();
        let (tx, rx) = mpsc::channel(CHANNEL);
        let view_dropped = Arc::new(AtomicU64::new(0));
        ctx.runtime.spawn(follow(
            ctx.session.clone(),
            request,
            control.clone(),
            tx,
            view_dropped.clone(),
        ));
        self.running = Some(Running {
            control,
            rx,
            view_dropped,
        });
        self.calls.clear();
        self.seen = 0;
        self.last_seq = None;
        self.gaps = 0;
        self.view_dropped = 0;
        self.condition_errors = 0;
        self.selected = None;
        self.follow = true;
        self.offset = 0;
        self.detail = DetailScroll::default();
        self.watched = pattern;
        self.started = Instant::now();
        self.state = State::Opening;
    }

    fn stop_stream(&mut self) {
        if let Some(running) = &self.running {
            running.control.stop();
            if matches!(self.state, State::Opening | State::Watching { .. }) {
                self.state = State::Stopping;
            }
        }
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Started { matched, backend } => {
                self.state = State::Watching { matched, backend };
            }
            Message::Observation(seq, observation) => {
                if let Some(last) = self.last_seq {
                    self.gaps += seq.saturating_sub(last + 1);
                }
                self.last_seq = Some(seq);
                self.push(*observation);
            }
            Message::Event(kind) => {
                if kind == "condition_errors" {
                    self.condition_errors += 1;
                }
            }
            Message::Ended {
                reason,
                dropped,
                client_dropped,
            } => {
                self.state = State::Ended(format!(
                    "{reason}; probe removed (agent dropped {dropped}, client dropped {client_dropped})"
                ));
                self.running = None;
            }
            Message::Failed(error) => {
                self.state = State::Failed(error);
                self.running = None;
            }
        }
    }

    /// Takes at most [`DRAIN_PER_TICK`] messages of the stream.
    fn drain(&mut self) {
        for _ in 0..DRAIN_PER_TICK {
            let Some(running) = &mut self.running else {
                break;
            };
            match running.rx.try_recv() {
                Ok(message) => self.take(message),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.running = None;
                    break;
                }
            }
        }
        if let Some(running) = &self.running {
            self.view_dropped = running.view_dropped.load(Ordering::Relaxed);
        }
    }

    fn push(&mut self, observation: WatchObservation) {
        self.seen += 1;
        self.calls.push_back(Call::new(self.next_id, observation));
        self.next_id += 1;
        while self.calls.len() > RING {
            self.calls.pop_front();
        }
    }

    /// Indices (into `calls`) of the rows the filter lets through.
    fn visible(&self) -> Vec<usize> {
        let filter = self.filter.text().to_lowercase();
        self.calls
            .iter()
            .enumerate()
            .filter(|(_, call)| filter.is_empty() || call.haystack.contains(&filter))
            .map(|(index, _)| index)
            .collect()
    }

    /// The position of the selection among `visible` (the newest row
    /// while following).
    fn selected_position(&self, visible: &[usize]) -> Option<usize> {
        if visible.is_empty() {
            return None;
        }
        if self.follow {
            return Some(visible.len() - 1);
        }
        let id = self.selected?;
        let position = visible.partition_point(|&index| self.calls[index].id < id);
        Some(position.min(visible.len() - 1))
    }

    fn move_selection(&mut self, delta: isize) {
        let visible = self.visible();
        let Some(current) = self.selected_position(&visible) else {
            return;
        };
        let last = visible.len() - 1;
        let target = current.saturating_add_signed(delta).min(last);
        self.follow = target == last && delta > 0;
        self.selected = Some(self.calls[visible[target]].id);
    }

    fn select_first(&mut self) {
        let visible = self.visible();
        if let Some(&first) = visible.first() {
            self.follow = false;
            self.selected = Some(self.calls[first].id);
        }
    }

    /// The id of the call the detail pane shows.
    fn shown_call(&self) -> Option<u64> {
        let visible = self.visible();
        self.selected_position(&visible)
            .map(|position| self.calls[visible[position]].id)
    }

    /// PageDown and PageUp scroll the detail pane by a page, `J` and `K`
    /// by a line.
    fn scroll_detail(&mut self, code: KeyCode) {
        let call = self.shown_call();
        match code {
            KeyCode::PageDown => self.detail.page(call, true),
            KeyCode::PageUp => self.detail.page(call, false),
            KeyCode::Char('J') => self.detail.scroll(call, 1),
            KeyCode::Char('K') => self.detail.scroll(call, -1),
            _ => {}
        }
    }

    fn status_line(&self) -> Line<'static> {
        let mut spans = match &self.state {
            State::Idle => vec![Span::styled(
                "no watch running: e enters a pattern (tab completes), enter starts the watch",
                theme::dim(),
            )],
            State::Opening => vec![
                Span::styled(spinner(self.started.elapsed()), theme::key()),
                Span::raw(format!(" installing the probe on {}…", self.watched)),
            ],
            State::Watching { matched, backend } => {
                let functions = match matched.as_slice() {
                    [one] if *one == self.watched => "1 function".to_owned(),
                    [one] => one.clone(),
                    many => format!("{} functions", many.len()),
                };
                let backend = backend
                    .as_deref()
                    .map(|b| format!(", {b}"))
                    .unwrap_or_default();
                vec![
                    Span::styled("● watching ", theme::good()),
                    Span::styled(self.watched.clone(), theme::name()),
                    Span::styled(format!(" ({functions}{backend})"), theme::dim()),
                ]
            }
            State::Stopping => vec![Span::styled(
                format!("stopping the watch on {}…", self.watched),
                theme::warn(),
            )],
            State::Ended(why) => vec![
                Span::styled("watch ended: ", theme::header()),
                Span::raw(why.clone()),
            ],
            State::Failed(error) => vec![
                Span::styled("error: ", theme::error()),
                Span::raw(format!("{error} (e edits the pattern, enter retries)")),
            ],
        };
        if self.seen > 0 || !matches!(self.state, State::Idle | State::Failed(_)) {
            spans.push(Span::styled(
                format!("  · {} calls, {} kept", self.seen, self.calls.len()),
                theme::dim(),
            ));
            let dropped = self.gaps + self.view_dropped;
            let style = if dropped > 0 {
                theme::warn()
            } else {
                theme::dim()
            };
            spans.push(Span::styled(
                format!(
                    " · dropped {dropped} (agent/client {}, view {})",
                    self.gaps, self.view_dropped
                ),
                style,
            ));
            if self.condition_errors > 0 {
                spans.push(Span::styled(
                    format!(" · condition errors reported {}", self.condition_errors),
                    theme::warn(),
                ));
            }
        }
        Line::from(spans)
    }

    fn options_line(&self) -> Line<'static> {
        let none = !(self.before || self.exception || self.success || self.finish);
        let toggle = |key: &'static str, on: bool, flag: &'static str, what: &'static str| {
            vec![
                Span::styled(key, theme::key()),
                Span::styled(
                    format!(" [{}] {flag} {what}  ", if on { "x" } else { " " }),
                    if on { Style::default() } else { theme::dim() },
                ),
            ]
        };
        let mut spans = vec![Span::styled("observe  ", theme::dim())];
        spans.extend(toggle("f", self.finish || none, "-f", "exits"));
        spans.extend(toggle("b", self.before, "-b", "entry"));
        spans.extend(toggle("x", self.exception, "-e", "exceptions"));
        spans.extend(toggle("o", self.success, "-s", "returns"));
        spans.push(Span::styled("d", theme::key()));
        spans.push(Span::styled(
            format!(" depth {}", self.depth),
            Style::default(),
        ));
        Line::from(spans)
    }

    fn render_table(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let visible = self.visible();
        let position = self.selected_position(&visible);
        let rows_fit = area.height.saturating_sub(3) as usize;
        if let Some(position) = position {
            if position < self.offset {
                self.offset = position;
            } else if rows_fit > 0 && position >= self.offset + rows_fit {
                self.offset = position + 1 - rows_fit;
            }
        }
        self.offset = self
            .offset
            .min(visible.len().saturating_sub(rows_fit.max(1)));
        let window: Vec<usize> = visible
            .iter()
            .skip(self.offset)
            .take(rows_fit.max(1))
            .copied()
            .collect();
        let name_width = window
            .iter()
            .map(|&index| self.calls[index].observation.func_name.chars().count())
            .max()
            .unwrap_or(8)
            .clamp(8, 40) as u16;
        let rows: Vec<Row<'_>> = window
            .iter()
            .map(|&index| {
                let call = &self.calls[index];
                let o = &call.observation;
                let (cost, cost_style) = match o.cost {
                    Some(ms) => (theme::duration_ms(ms), theme::cost_style(ms)),
                    None => ("-".to_owned(), theme::dim()),
                };
                let outcome_style = match o.location {
                    Location::AtExceptionExit => theme::error(),
                    Location::AtEnter => theme::dim(),
                    _ => Style::default(),
                };
                Row::new(vec![
                    Cell::from(call.time.clone()),
                    Cell::from(Span::styled(o.func_name.clone(), theme::name())),
                    Cell::from(Span::styled(cost, cost_style)),
                    Cell::from(Span::styled(call.summary.clone(), outcome_style)),
                ])
            })
            .collect();
        let filter = self.filter.text();
        let title = if filter.is_empty() && !self.filter.is_focused() {
            " calls (newest last) ".to_owned()
        } else {
            format!(" calls matching `{filter}`: {} ", visible.len())
        };
        let mut state =
            TableState::default().with_selected(position.map(|p| p.saturating_sub(self.offset)));
        frame.render_stateful_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(12),
                    Constraint::Length(name_width),
                    Constraint::Length(9),
                    Constraint::Min(10),
                ],
            )
            .header(
                Row::new(["TIME", "FUNCTION", "COST", "RESULT / EXCEPTION"]).style(theme::header()),
            )
            .block(Block::default().borders(Borders::ALL).title(title))
            .row_highlight_style(theme::selected()),
            area,
            &mut state,
        );
    }

    fn render_detail(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let visible = self.visible();
        let call = self
            .selected_position(&visible)
            .map(|position| &self.calls[visible[position]]);
        let block = Block::default().borders(Borders::ALL);
        let Some(call) = call else {
            self.detail.fit(None, 0, 0);
            let block = block.title(" call ");
            let hint = Line::from(Span::styled(
                "the selected call's arguments, result, exception and cost show here",
                theme::dim(),
            ));
            frame.render_widget(
                Paragraph::new(hint).wrap(Wrap { trim: false }).block(block),
                area,
            );
            return;
        };
        let inner = block.inner(area);
        let paragraph = Paragraph::new(detail_lines(call)).wrap(Wrap { trim: false });
        self.detail.fit(
            Some(call.id),
            usize::from(inner.height),
            paragraph.line_count(inner.width),
        );
        let top = u16::try_from(self.detail.top).unwrap_or(u16::MAX);
        frame.render_widget(
            paragraph
                .scroll((top, 0))
                .block(block.title(self.detail.title())),
            area,
        );
    }
}

/// The detail pane's lines for one call.
fn detail_lines(call: &Call) -> Vec<Line<'static>> {
    let o = &call.observation;
    let location = match o.location {
        Location::AtEnter => "at entry",
        Location::AtExit => "returned",
        Location::AtExceptionExit => "raised",
        _ => "",
    };
    let cost = o.cost.map_or("-".to_owned(), theme::duration_ms);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(o.func_name.clone(), theme::name()),
            Span::raw(format!(" {location}")),
        ]),
        Line::from(vec![
            Span::styled("cost ", theme::dim()),
            Span::styled(cost, o.cost.map_or(Style::default(), theme::cost_style)),
            Span::styled(
                format!(
                    " · {} · thread {} ({})",
                    call.time, o.thread_name, o.thread_id
                ),
                theme::dim(),
            ),
        ]),
    ];
    let mut section = |title: String, value: &Value| {
        lines.push(Line::from(Span::styled(title, theme::header())));
        for text in entries(value) {
            lines.push(Line::from(format!("  {text}")));
        }
    };
    let count = o.params.as_array().map_or(0, Vec::len);
    section(format!("arguments ({count})"), &o.params);
    if o.kwargs.as_object().is_some_and(|k| !k.is_empty()) {
        section("keyword arguments".into(), &o.kwargs);
    }
    if !o.target.is_null() {
        section("self".into(), &o.target);
    }
    match o.location {
        Location::AtExceptionExit => section("exception".into(), &o.throw_exp),
        Location::AtEnter => {}
        _ => section("result".into(), &o.return_obj),
    }
    lines
}

/// A captured value as lines: one per item of a list (`[0] ...`), one per
/// field of an object (`name: ...`), else one line.
fn entries(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(index, item)| format!("[{index}] {}", compact(item)))
            .collect(),
        Value::Object(fields) if !fields.is_empty() => fields
            .iter()
            .map(|(name, item)| format!("{name}: {}", compact(item)))
            .collect(),
        other => vec![compact(other)],
    }
}

/// One value on one line (strings as they are, not quoted).
fn compact(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Follows one `watch` stream to its end, handing its items to the view.
async fn follow(
    session: Arc<AsyncSession>,
    request: WatchRequest,
    control: StreamControl,
    tx: mpsc::Sender<Message>,
    view_dropped: Arc<AtomicU64>,
) {
    let mut stream = match session.watch(&request).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.send(Message::Failed(e.to_string())).await;
            return;
        }
    };
    if !control.opened(stream.canceller()) {
        let _ = tx
            .send(Message::Ended {
                reason: "stopped before the first call".into(),
                dropped: 0,
                client_dropped: 0,
            })
            .await;
        return;
    }
    let started = stream.started();
    let matched = started.matched.iter().map(|m| m.name.clone()).collect();
    let backend = started.backend.clone();
    let _ = tx.send(Message::Started { matched, backend }).await;
    while let Some(item) = stream.next().await {
        match item {
            Ok(StreamItem::Observation { seq, data }) => {
                if tx
                    .try_send(Message::Observation(seq, Box::new(data)))
                    .is_err()
                {
                    view_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(StreamItem::Event { kind, .. }) => {
                let _ = tx.try_send(Message::Event(kind));
            }
            Err(e) => {
                let _ = tx.send(Message::Failed(e.to_string())).await;
                return;
            }
        }
    }
    let (reason, dropped, client_dropped) = match stream.end() {
        Some(end) => (
            format!("{:?}", end.reason).to_lowercase(),
            end.dropped,
            end.client_dropped,
        ),
        None => ("ended".into(), 0, 0),
    };
    let _ = tx
        .send(Message::Ended {
            reason,
            dropped,
            client_dropped,
        })
        .await;
}

impl View for WatchView {
    fn title(&self) -> &'static str {
        "watch"
    }

    fn hints(&self) -> &'static str {
        "e: pattern  enter: start  s: stop  c: condition  /: filter  f b x o: observe  d: depth  ↑↓: select  PgDn PgUp J K: scroll call"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [pattern_area, options, boxes, status, body] = Layout::vertical([
            Constraint::Length(pattern_input::HEIGHT),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(4),
        ])
        .areas(area);
        let [condition_area, filter_area] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(boxes);
        frame.render_widget(Paragraph::new(self.options_line()), options);
        frame.render_widget(
            Paragraph::new(self.condition.line("condition (c)", "none, e.g. cost > 10")),
            condition_area,
        );
        frame.render_widget(
            Paragraph::new(self.filter.line("filter (/)", "none")),
            filter_area,
        );
        frame.render_widget(Paragraph::new(self.status_line()), status);
        let wide = body.width >= 110;
        let [table, detail] = if wide {
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(body)
        } else {
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body)
        };
        self.render_table(frame, table);
        self.render_detail(frame, detail);
        // Last, so that the completion popup is drawn over the rest.
        self.pattern.render(frame, pattern_area);
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome {
        match self.focus() {
            Focus::Pattern => {
                match self.pattern.on_key(key, ctx) {
                    InputEvent::Submitted(_) => self.start(ctx),
                    InputEvent::Cancelled | InputEvent::Consumed | InputEvent::Ignored => {}
                }
                return KeyOutcome::Consumed;
            }
            Focus::Condition => {
                if self.condition.on_key(key) == EditEvent::Submitted && self.running.is_some() {
                    self.start(ctx);
                }
                return KeyOutcome::Consumed;
            }
            Focus::Filter => {
                self.filter.on_key(key);
                return KeyOutcome::Consumed;
            }
            Focus::None => {}
        }
        match key.code {
            KeyCode::Char('e') | KeyCode::Char('p') => self.pattern.focus(),
            KeyCode::Enter => self.start(ctx),
            KeyCode::Char('s') => self.stop_stream(),
            KeyCode::Char('c') => self.condition.focus(),
            KeyCode::Char('/') => self.filter.focus(),
            KeyCode::Char('f') => self.finish = !self.finish,
            KeyCode::Char('b') => self.before = !self.before,
            KeyCode::Char('x') => self.exception = !self.exception,
            KeyCode::Char('o') => self.success = !self.success,
            KeyCode::Char('d') => self.depth = self.depth % 4 + 1,
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp | KeyCode::PageDown | KeyCode::Char('J' | 'K') => {
                self.scroll_detail(key.code);
            }
            KeyCode::Home => self.select_first(),
            KeyCode::End | KeyCode::Char('G') => self.follow = true,
            _ => return KeyOutcome::Ignored,
        }
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, _ctx: &Ctx, _visible: bool) {
        self.pattern.on_tick();
        self.drain();
    }

    fn is_editing(&self) -> bool {
        self.focus() != Focus::None
    }

    fn stop(&mut self) {
        self.stop_stream();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn observation(n: u64) -> WatchObservation {
        let (location, result, thrown, cost) = match n % 3 {
            0 => (
                "AtExceptionExit",
                Value::Null,
                serde_json::json!("__main__.OrderError: not enough plum"),
                0.021,
            ),
            1 => (
                "AtExit",
                serde_json::json!({"item": "apple", "quantity": 3, "total": 1.5, "left": 41}),
                Value::Null,
                1.734,
            ),
            _ => (
                "AtExit",
                serde_json::json!({"item": "pear", "quantity": 1, "total": 0.8, "left": 12}),
                Value::Null,
                12.5,
            ),
        };
        serde_json::from_value(serde_json::json!({
            "func_name": "__main__.place_order", "location": location,
            "params": ["<__main__.Inventory object at 0x7f8b13102cc0>", "apple", 3],
            "kwargs": {}, "target": null, "returnObj": result, "throwExp": thrown,
            "success": location == "AtExit", "cost": cost,
            "thread_id": 140001, "thread_name": "MainThread",
            "timestamp": 1_795_000_000.25 + n as f64 * 0.01
        }))
        .unwrap()
    }

    fn watching() -> WatchView {
        let mut view = WatchView::new();
        view.pattern.set_value("__main__.place_order");
        view.watched = "__main__.place_order".into();
        view.state = State::Watching {
            matched: vec!["__main__.place_order".into()],
            backend: Some("monitoring".into()),
        };
        for n in 0..6 {
            view.take(Message::Observation(n + 1, Box::new(observation(n))));
        }
        view
    }

    #[test]
    fn calls_stream_into_the_table_with_the_newest_in_detail() {
        let mut view = watching();
        let screen = draw_to_text(140, 24, |frame, area| view.render(frame, area));
        assert_screen("watch", &screen);
    }

    #[test]
    fn an_exception_shows_in_the_detail_and_the_filter_narrows_the_rows() {
        let mut view = watching();
        view.filter.focus();
        for c in "orderError".chars() {
            view.filter.on_key(KeyEvent::from(KeyCode::Char(c)));
        }
        view.filter.on_key(KeyEvent::from(KeyCode::Enter));
        assert_eq!(view.visible().len(), 2);
        let screen = draw_to_text(100, 30, |frame, area| view.render(frame, area));
        assert_screen("watch_filtered_narrow", &screen);
    }

    /// A call with a long argument (wrapped) and a result of 40 fields.
    fn long_observation() -> WatchObservation {
        let fields: serde_json::Map<String, Value> = (0..40)
            .map(|n| (format!("line_{n:02}"), serde_json::json!(n * 10)))
            .collect();
        // Like call 1, a return, but later than the six of `watching`.
        let mut o = observation(7);
        o.params = serde_json::json!([
            "<__main__.Inventory object at 0x7f8b13102cc0>",
            (0..100)
                .map(|n| format!("apple{n}"))
                .collect::<Vec<_>>()
                .join(" "),
            3
        ]);
        o.return_obj = Value::Object(fields);
        o
    }

    #[test]
    fn a_long_call_scrolls_in_the_detail_pane_with_its_lines_in_the_title() {
        let mut view = watching();
        view.take(Message::Observation(7, Box::new(long_observation())));
        draw_to_text(100, 30, |frame, area| view.render(frame, area));
        assert_eq!(view.detail.height, 11);
        assert!(
            view.detail.total > Some(view.detail.height),
            "{:?}",
            view.detail
        );
        view.scroll_detail(KeyCode::PageDown);
        view.scroll_detail(KeyCode::Char('J'));
        assert_eq!(view.detail.top, 11, "a page is the height minus one line");
        let screen = draw_to_text(100, 30, |frame, area| view.render(frame, area));
        assert_screen("watch_detail_scrolled", &screen);
    }

    #[test]
    fn the_detail_scroll_stops_at_the_ends_and_another_call_starts_at_the_top() {
        let mut view = watching();
        view.take(Message::Observation(7, Box::new(long_observation())));
        let draw = |view: &mut WatchView| {
            draw_to_text(100, 30, |frame, area| view.render(frame, area));
        };
        draw(&mut view);
        view.scroll_detail(KeyCode::Char('K'));
        assert_eq!(view.detail.top, 0);
        assert!(view.detail.title().starts_with(" call · lines 1-11 of "));
        for _ in 0..10 {
            view.scroll_detail(KeyCode::PageDown);
        }
        draw(&mut view);
        let end = view.detail.max_top();
        assert!(end > 0);
        assert_eq!(view.detail.top, end, "never past the end");
        let total = view.detail.total.unwrap_or_default();
        assert_eq!(
            view.detail.title(),
            format!(" call · lines {}-{total} of {total} ", end + 1)
        );
        view.scroll_detail(KeyCode::PageUp);
        assert_eq!(view.detail.top, end - 10);

        // Selecting another call, by key or as a new call arrives while
        // following, starts it at the top.
        view.move_selection(-1);
        draw(&mut view);
        assert_eq!(view.detail.top, 0);
        assert_eq!(
            view.detail.title(),
            " call ",
            "a short call has no indicator"
        );
        view.move_selection(1);
        view.scroll_detail(KeyCode::Char('J'));
        view.scroll_detail(KeyCode::Char('J'));
        draw(&mut view);
        assert_eq!(view.detail.top, 2, "keys before the next frame count");
        view.take(Message::Observation(8, Box::new(long_observation())));
        draw(&mut view);
        assert_eq!(view.detail.top, 0);
    }

    #[test]
    fn the_ring_keeps_the_newest_and_gaps_count_as_drops() {
        let mut view = watching();
        for n in 0..(RING as u64 + 10) {
            // Every other seq missing: the agent dropped those.
            view.take(Message::Observation(100 + 2 * n, Box::new(observation(n))));
        }
        assert_eq!(view.calls.len(), RING);
        assert_eq!(view.seen, 6 + RING as u64 + 10);
        assert_eq!(view.gaps, 93 + RING as u64 + 9);
        let first = view.calls.front().unwrap().id;
        assert_eq!(first, view.next_id - RING as u64);
    }

    #[test]
    fn a_flood_is_taken_a_bounded_amount_per_tick_and_counted_when_it_overflows() {
        let mut view = WatchView::new();
        let (tx, rx) = mpsc::channel(CHANNEL);
        let view_dropped = Arc::new(AtomicU64::new(0));
        view.running = Some(Running {
            control: StreamControl::new(),
            rx,
            view_dropped: view_dropped.clone(),
        });
        // What `follow` does with a stream faster than the view: the
        // channel fills, the rest is dropped and counted, never waited for.
        let sent = CHANNEL as u64 + 500;
        for seq in 1..=sent {
            if tx
                .try_send(Message::Observation(seq, Box::new(observation(seq))))
                .is_err()
            {
                view_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        view.drain();
        assert_eq!(
            view.seen, DRAIN_PER_TICK as u64,
            "one tick takes a bounded amount"
        );
        assert_eq!(view.view_dropped, 500);
        let started = Instant::now();
        let screen = draw_to_text(160, 50, |frame, area| view.render(frame, area));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            screen.contains("dropped 500 (agent/client 0, view 500)"),
            "{screen}"
        );
        view.drain();
        view.drain();
        assert_eq!(view.seen, CHANNEL as u64);
    }

    #[test]
    fn moving_up_leaves_follow_mode_and_end_returns_to_it() {
        let mut view = watching();
        view.move_selection(-2);
        assert!(!view.follow);
        let visible = view.visible();
        assert_eq!(view.selected_position(&visible), Some(3));
        view.take(Message::Observation(7, Box::new(observation(7))));
        let visible = view.visible();
        assert_eq!(
            view.selected_position(&visible),
            Some(3),
            "the selection stays put"
        );
        view.move_selection(10);
        assert!(view.follow);
    }

    #[test]
    fn the_end_and_a_failure_are_reported() {
        let mut view = watching();
        view.take(Message::Ended {
            reason: "cancelled".into(),
            dropped: 0,
            client_dropped: 0,
        });
        let status = draw_to_text(140, 1, |frame, area| {
            frame.render_widget(Paragraph::new(view.status_line()), area)
        });
        assert!(
            status.contains("watch ended: cancelled; probe removed"),
            "{status}"
        );
        view.take(Message::Failed(
            "`watch` failed in the target: not_found: no function matches `__main__.plac`; close matches: __main__.place_order".into(),
        ));
        let status = draw_to_text(200, 1, |frame, area| {
            frame.render_widget(Paragraph::new(view.status_line()), area)
        });
        assert!(status.contains("error: `watch` failed"), "{status}");
    }

    #[test]
    fn the_options_make_the_request() {
        let mut view = WatchView::new();
        view.exception = true;
        view.before = true;
        view.condition.focus();
        for c in "cost > 1".chars() {
            view.condition.on_key(KeyEvent::from(KeyCode::Char(c)));
        }
        let request = view.request("m.f");
        assert!(request.exception && request.before && !request.finish);
        assert_eq!(request.condition.as_deref(), Some("cost > 1"));
        assert_eq!(request.max_bytes, Some(MAX_BYTES));
    }
}
