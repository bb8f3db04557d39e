//! View 1, the dashboard: the target at a glance, refreshed about every two
//! seconds while on screen: its threads by CPU use, its memory (resident
//! size, the collector, the types using most), and its hot functions (a
//! `top` sampling of one second, one cycle).
//!
//! Each of the three is fetched by its own task, never two of a kind at
//! once; the sampling stream runs only while the dashboard is on screen
//! and is cancelled when it leaves the screen or the TUI quits.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent};
use futures_util::StreamExt;
use peeka_core::client::{
    MemoryOverview, StreamItem, ThreadReport, ThreadRequest, ThreadSort, TopRequest, TopSnapshot,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;
use serde_json::Value;

use super::threads::{short_path, state_style};
use crate::tui::stream_control::StreamControl;
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Time between refreshes while on screen.
const REFRESH: Duration = Duration::from_secs(2);
/// How long the hot functions are sampled per refresh.
const SAMPLE: Duration = Duration::from_secs(1);
/// Functions shown.
const HOT_FUNCTIONS: u32 = 10;
/// Types shown in the memory pane.
const TYPES: u32 = 5;

enum Reply {
    Threads(Result<ThreadReport, String>),
    Memory(Result<MemoryOverview, String>),
    Hot(Result<Option<TopSnapshot>, String>),
}

/// One figure with its state: not asked yet, asked, answered or failed.
#[derive(Debug)]
struct Panel<T> {
    value: Option<T>,
    error: Option<String>,
    in_flight: bool,
    started: Option<Instant>,
}

impl<T> Default for Panel<T> {
    fn default() -> Self {
        Self {
            value: None,
            error: None,
            in_flight: false,
            started: None,
        }
    }
}

impl<T> Panel<T> {
    /// Whether a new request is due.
    fn due(&self) -> bool {
        !self.in_flight && self.started.is_none_or(|at| at.elapsed() >= REFRESH)
    }

    fn begin(&mut self) {
        self.in_flight = true;
        self.started = Some(Instant::now());
    }

    fn settle(&mut self, reply: Result<T, String>) {
        self.in_flight = false;
        match reply {
            Ok(value) => {
                self.value = Some(value);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// A line for the pane's title: `refreshing` or the error.
    fn state_lines(&self) -> Vec<Line<'static>> {
        let mut lines = Vec::new();
        if let Some(error) = &self.error {
            lines.push(Line::from(Span::styled(
                format!("error: {error}"),
                theme::error(),
            )));
        } else if self.value.is_none() {
            lines.push(Line::from(Span::styled("reading…", theme::dim())));
        }
        lines
    }
}

/// The dashboard view.
pub(crate) struct DashboardView {
    threads: Panel<ThreadReport>,
    memory: Panel<MemoryOverview>,
    hot: Panel<Option<TopSnapshot>>,
    sampling: Option<StreamControl>,
    paused: bool,
    tx: mpsc::Sender<Reply>,
    rx: mpsc::Receiver<Reply>,
}

impl std::fmt::Debug for DashboardView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardView")
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl DashboardView {
    /// An empty dashboard; it fills itself when first on screen.
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            threads: Panel::default(),
            memory: Panel::default(),
            hot: Panel::default(),
            sampling: None,
            paused: false,
            tx,
            rx,
        }
    }

    fn refresh(&mut self, ctx: &Ctx) {
        if self.threads.due() {
            self.threads.begin();
            let (session, tx) = (ctx.session.clone(), self.tx.clone());
            ctx.runtime.spawn(async move {
                let request = ThreadRequest::list()
                    .sort_by(ThreadSort::Cpu)
                    .interval_ms(200);
                let reply = session.thread(&request).await.map_err(|e| e.to_string());
                let _ = tx.send(Reply::Threads(reply));
            });
        }
        if self.memory.due() {
            self.memory.begin();
            let (session, tx) = (ctx.session.clone(), self.tx.clone());
            ctx.runtime.spawn(async move {
                let reply = session
                    .memory_overview(Some(TYPES))
                    .await
                    .map_err(|e| e.to_string());
                let _ = tx.send(Reply::Memory(reply));
            });
        }
        if self.hot.due() {
            self.hot.begin();
            let control = StreamControl::new();
            self.sampling = Some(control.clone());
            let (session, tx) = (ctx.session.clone(), self.tx.clone());
            ctx.runtime.spawn(async move {
                let request = TopRequest::new()
                    .report_interval(SAMPLE)
                    .cycles(1)
                    .limit(HOT_FUNCTIONS);
                let reply = sample(&session, &request, &control).await;
                let _ = tx.send(Reply::Hot(reply));
            });
        }
    }

    fn stop_sampling(&mut self) {
        if let Some(control) = self.sampling.take() {
            control.stop();
        }
    }

    fn render_threads(&self, frame: &mut Frame<'_>, area: Rect) {
        let Some(report) = &self.threads.value else {
            let block = Block::default().borders(Borders::ALL).title(" threads ");
            frame.render_widget(
                Paragraph::new(self.threads.state_lines()).block(block),
                area,
            );
            return;
        };
        let entries = report.entries();
        let rows: Vec<Row<'_>> = entries
            .iter()
            .map(|t| {
                Row::new(vec![
                    Cell::from(Span::styled(t.name.clone(), theme::name())),
                    Cell::from(Span::styled(t.state.as_str(), state_style(t.state))),
                    Cell::from(theme::percent(t.cpu_percent)),
                ])
            })
            .collect();
        let title = format!(" threads ({}), busiest first ", entries.len());
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Min(12),
                    Constraint::Length(13),
                    Constraint::Length(7),
                ],
            )
            .header(Row::new(["NAME", "STATE", "CPU"]).style(theme::header()))
            .block(Block::default().borders(Borders::ALL).title(title)),
            area,
        );
    }

    fn render_memory(&self, frame: &mut Frame<'_>, area: Rect) {
        let block = Block::default().borders(Borders::ALL).title(" memory ");
        let Some(memory) = &self.memory.value else {
            frame.render_widget(Paragraph::new(self.memory.state_lines()).block(block), area);
            return;
        };
        let size = |bytes: Option<u64>| bytes.map_or("-".to_owned(), theme::bytes);
        let mut lines = vec![
            Line::from(vec![
                Span::styled("rss   ", theme::dim()),
                Span::styled(size(memory.rss_bytes), theme::header()),
                Span::styled(
                    format!("  peak {}", size(memory.peak_rss_bytes)),
                    theme::dim(),
                ),
            ]),
            Line::from(vec![
                Span::styled("vms   ", theme::dim()),
                Span::raw(size(memory.vms_bytes)),
            ]),
            Line::from(vec![
                Span::styled("gc    ", theme::dim()),
                Span::raw(gc_summary(&memory.gc)),
            ]),
            Line::from(vec![
                Span::styled("trace ", theme::dim()),
                Span::raw(tracemalloc_summary(&memory.tracemalloc)),
            ]),
            Line::from(Span::styled(
                format!("largest types of {}:", memory.types_total),
                theme::header(),
            )),
        ];
        for usage in &memory.types {
            lines.push(Line::from(vec![
                Span::raw(format!("{:>10}  ", theme::bytes(usage.size))),
                Span::styled(usage.type_name.clone(), theme::name()),
                Span::styled(format!(" ×{}", usage.count), theme::dim()),
            ]));
        }
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }

    fn render_hot(&self, frame: &mut Frame<'_>, area: Rect) {
        let sampling = if self.hot.in_flight {
            " · sampling…"
        } else {
            ""
        };
        let block = Block::default().borders(Borders::ALL).title(format!(
            " hot functions, sampled over {}s{sampling} ",
            SAMPLE.as_secs()
        ));
        let snapshot = match &self.hot.value {
            Some(Some(snapshot)) => snapshot,
            Some(None) => {
                let line = Line::from(Span::styled(
                    "the sampling ended without a snapshot",
                    theme::dim(),
                ));
                frame.render_widget(Paragraph::new(line).block(block), area);
                return;
            }
            None => {
                frame.render_widget(Paragraph::new(self.hot.state_lines()).block(block), area);
                return;
            }
        };
        if snapshot.functions.is_empty() {
            let line = Line::from(Span::styled(
                "no thread used CPU while sampled: the process is idle",
                theme::dim(),
            ));
            frame.render_widget(Paragraph::new(line).block(block), area);
            return;
        }
        let rows: Vec<Row<'_>> = snapshot
            .functions
            .iter()
            .map(|f| {
                let place = match (&f.filename, f.line) {
                    (Some(file), Some(line)) => format!("{}:{line}", short_path(file)),
                    (Some(file), None) => short_path(file),
                    _ => String::new(),
                };
                Row::new(vec![
                    Cell::from(format!("{:.1}%", f.own_pct)),
                    Cell::from(format!("{:.1}%", f.total_pct)),
                    Cell::from(Span::styled(f.name.clone(), theme::name())),
                    Cell::from(Span::styled(place, theme::dim())),
                ])
            })
            .collect();
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(7),
                    Constraint::Length(7),
                    Constraint::Min(20),
                    Constraint::Percentage(35),
                ],
            )
            .header(Row::new(["OWN", "TOTAL", "FUNCTION", "WHERE"]).style(theme::header()))
            .block(block),
            area,
        );
    }
}

/// Samples once: opens `top` for one cycle, returns its snapshot.
async fn sample(
    session: &peeka_core::client::AsyncSession,
    request: &TopRequest,
    control: &StreamControl,
) -> Result<Option<TopSnapshot>, String> {
    let mut stream = session.top(request).await.map_err(|e| e.to_string())?;
    if !control.opened(stream.canceller()) {
        return Ok(None);
    }
    let mut last = None;
    while let Some(item) = stream.next().await {
        if let StreamItem::Observation { data, .. } = item.map_err(|e| e.to_string())? {
            last = Some(data);
        }
    }
    Ok(last)
}

/// `counts 312/4/1 · 120 collections · 0 uncollectable`.
fn gc_summary(gc: &Value) -> String {
    let counts = gc["counts"]
        .as_array()
        .map(|c| c.iter().map(Value::to_string).collect::<Vec<_>>().join("/"))
        .unwrap_or_else(|| "-".into());
    let collections: u64 = match &gc["collections"] {
        Value::Array(per_generation) => per_generation.iter().filter_map(Value::as_u64).sum(),
        other => other.as_u64().unwrap_or(0),
    };
    let enabled = if gc["enabled"] == Value::Bool(false) {
        " (disabled)"
    } else {
        ""
    };
    format!("counts {counts} · {collections} collections{enabled}")
}

/// `off` or `on: 1.2 MiB traced (peak 2.0 MiB)`.
fn tracemalloc_summary(tracemalloc: &Value) -> String {
    if tracemalloc["tracing"] != Value::Bool(true) {
        return "tracemalloc off (view 7 starts it)".into();
    }
    let traced = tracemalloc["traced_bytes"]
        .as_u64()
        .map_or("-".into(), theme::bytes);
    let peak = tracemalloc["peak_bytes"]
        .as_u64()
        .map_or("-".into(), theme::bytes);
    format!("tracemalloc on: {traced} traced (peak {peak})")
}

impl View for DashboardView {
    fn title(&self) -> &'static str {
        "dashboard"
    }

    fn hints(&self) -> &'static str {
        "p: pause/resume refreshing"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
        let [threads, memory] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
        self.render_threads(frame, threads);
        self.render_memory(frame, memory);
        self.render_hot(frame, bottom);
        if self.paused {
            let label = Span::styled(" paused (p resumes) ", theme::warn());
            let width = label.width() as u16;
            if area.width > width + 2 {
                let at = Rect {
                    x: area.x + area.width - width - 2,
                    y: area.y,
                    width,
                    height: 1,
                };
                frame.render_widget(Paragraph::new(Line::from(label)), at);
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent, _ctx: &Ctx) -> KeyOutcome {
        match key.code {
            KeyCode::Char('p') => {
                self.paused = !self.paused;
                if self.paused {
                    self.stop_sampling();
                }
                KeyOutcome::Consumed
            }
            _ => KeyOutcome::Ignored,
        }
    }

    fn on_tick(&mut self, ctx: &Ctx, visible: bool) {
        for _ in 0..16 {
            let Ok(reply) = self.rx.try_recv() else { break };
            match reply {
                Reply::Threads(reply) => self.threads.settle(reply),
                Reply::Memory(reply) => self.memory.settle(reply),
                Reply::Hot(reply) => {
                    self.sampling = None;
                    // A sampling cut short (view left) keeps the last figures.
                    match reply {
                        Ok(None) if self.hot.value.is_some() => self.hot.in_flight = false,
                        other => self.hot.settle(other),
                    }
                }
            }
        }
        if visible && !self.paused {
            self.refresh(ctx);
        } else {
            self.stop_sampling();
        }
    }

    fn stop(&mut self) {
        self.stop_sampling();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn dashboard() -> DashboardView {
        let mut view = DashboardView::new();
        view.threads
            .settle(Ok(super::super::threads::tests::report()));
        view.memory.settle(Ok(serde_json::from_value(serde_json::json!({
            "rss_bytes": 47_185_920u64, "peak_rss_bytes": 52_428_800u64, "vms_bytes": 268_435_456u64,
            "gc": {"enabled": true, "counts": [312, 4, 1], "thresholds": [700, 10, 10],
                   "collections": [120, 10, 1], "collected": 50, "uncollectable": 0, "garbage": 0},
            "tracemalloc": {"tracing": false},
            "types": [
                {"type": "dict", "count": 5210, "size": 1_523_712},
                {"type": "function", "count": 8120, "size": 1_169_280},
                {"type": "tuple", "count": 9800, "size": 640_000},
                {"type": "__main__.Order", "count": 1200, "size": 57_600}
            ],
            "types_total": 412, "scanned": 60000, "tracked": 60000, "scan_truncated": false,
            "scan_stopped_by": null, "scan_ms": 12.5
        }))
        .unwrap()));
        view.hot.settle(Ok(Some(serde_json::from_value(serde_json::json!({
            "cycle": 1, "timestamp": 1795000000.0, "sample_interval": 0.01, "elapsed": 1.0,
            "ticks": 100, "total_samples": 80, "idle_samples": 120, "threads": 1, "function_count": 3,
            "functions": [
                {"name": "orders.price", "filename": "/srv/shop/orders.py", "line": 30,
                 "own_count": 52, "total_count": 52, "own_pct": 65.0, "total_pct": 65.0,
                 "own_time": 0.52, "total_time": 0.52},
                {"name": "orders.place_order", "filename": "/srv/shop/orders.py", "line": 38,
                 "own_count": 20, "total_count": 72, "own_pct": 25.0, "total_pct": 90.0,
                 "own_time": 0.2, "total_time": 0.72},
                {"name": "__main__.main", "filename": "/srv/shop/__main__.py", "line": 50,
                 "own_count": 8, "total_count": 80, "own_pct": 10.0, "total_pct": 100.0,
                 "own_time": 0.08, "total_time": 0.8}
            ]
        }))
        .unwrap())));
        view
    }

    #[test]
    fn threads_memory_and_hot_functions() {
        let mut view = dashboard();
        let screen = draw_to_text(110, 24, |frame, area| view.render(frame, area));
        assert_screen("dashboard", &screen);
    }

    #[test]
    fn panels_say_they_are_reading_then_show_errors() {
        let mut view = DashboardView::new();
        view.memory.begin();
        view.memory
            .settle(Err("the agent did not answer `memory` within 10s".into()));
        let screen = draw_to_text(110, 12, |frame, area| view.render(frame, area));
        assert_screen("dashboard_empty", &screen);
    }

    #[test]
    fn gc_and_tracemalloc_summaries() {
        let gc =
            serde_json::json!({"enabled": false, "counts": [1, 2, 3], "collections": [4, 5, 6]});
        assert_eq!(gc_summary(&gc), "counts 1/2/3 · 15 collections (disabled)");
        let on = serde_json::json!({"tracing": true, "traced_bytes": 2048, "peak_bytes": 4096});
        assert_eq!(
            tracemalloc_summary(&on),
            "tracemalloc on: 2.0 KiB traced (peak 4.0 KiB)"
        );
    }
}
