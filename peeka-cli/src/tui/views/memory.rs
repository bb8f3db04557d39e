//! View 7, memory: the process's memory, the collector, the types using
//! most memory, and tracemalloc.
//!
//! The overview is read when the view first shows and on `r`. tracemalloc
//! is driven with keys, one action at a time: `t` starts it, `n` takes a
//! snapshot, `a` lists the top allocations, `d` compares with the snapshot,
//! `x` stops it (Peeka also stops what it started when it detaches). The
//! last action's answer is shown as a table; a failure is shown with what
//! to press.

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{
    AllocationDiff, AllocationQuery, AllocationStat, AllocationTop, MemoryOverview, SnapshotTaken,
    TracingState,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use serde_json::Value;

use super::request_task::{RequestTask, Reread};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Types asked for in the overview.
const TYPES: u32 = 30;
/// Allocation groups asked for.
const GROUPS: u32 = 30;

/// A tracemalloc action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Snapshot,
    Top,
    Diff,
    Stop,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Snapshot => "snapshot",
            Self::Top => "top",
            Self::Diff => "diff",
            Self::Stop => "stop",
        }
    }

    /// What to press when the action failed.
    fn fix(self) -> &'static str {
        match self {
            Self::Diff => "take a snapshot first (n), with tracemalloc started (t)",
            Self::Snapshot | Self::Top => "start tracemalloc first (t)",
            Self::Stop => "tracemalloc stops only if Peeka started it",
            Self::Start => "check the target's memory; tracemalloc costs memory per allocation",
        }
    }
}

/// The answer of a tracemalloc action.
#[derive(Debug)]
enum Outcome {
    Tracing(TracingState),
    Snapshot(SnapshotTaken),
    Top(AllocationTop),
    Diff(AllocationDiff),
}

/// The memory view.
#[derive(Debug)]
pub(crate) struct MemoryView {
    overview: Option<MemoryOverview>,
    overview_error: Option<String>,
    loading: Reread<MemoryOverview>,
    action: Option<(Action, RequestTask<Outcome>)>,
    outcome: Option<Outcome>,
    action_error: Option<(Action, String)>,
}

impl Default for MemoryView {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryView {
    /// A memory view; the overview is read when it first shows.
    pub(crate) fn new() -> Self {
        Self {
            overview: None,
            overview_error: None,
            loading: Reread::new(),
            action: None,
            outcome: None,
            action_error: None,
        }
    }

    fn refresh(&mut self, ctx: &Ctx) {
        self.loading.start(ctx, |session| async move {
            session.memory_overview(Some(TYPES)).await
        });
    }

    fn run(&mut self, action: Action, ctx: &Ctx) {
        if self.action.is_some() {
            return;
        }
        let session = ctx.session.clone();
        let query = AllocationQuery::new().limit(GROUPS);
        let task = RequestTask::spawn(&ctx.runtime, async move {
            Ok(match action {
                Action::Start => Outcome::Tracing(session.memory_start(None).await?),
                Action::Stop => Outcome::Tracing(session.memory_stop().await?),
                Action::Snapshot => Outcome::Snapshot(session.memory_snapshot().await?),
                Action::Top => Outcome::Top(session.memory_top(&query).await?),
                Action::Diff => Outcome::Diff(session.memory_diff(&query).await?),
            })
        });
        self.action = Some((action, task));
    }

    fn overview_lines(&self, o: &MemoryOverview) -> Vec<Line<'static>> {
        let size = |n: Option<u64>| n.map_or_else(|| "?".into(), theme::bytes);
        let gc = &o.gc;
        let list = |v: &Value| -> String {
            v.as_array().map_or_else(
                || "?".into(),
                |items| {
                    items
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("/")
                },
            )
        };
        let enabled = gc.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let tm = &o.tracemalloc;
        let tracing = tm.get("tracing").and_then(Value::as_bool).unwrap_or(false);
        let mut lines = vec![
            Line::from(vec![
                Span::styled("RSS ", theme::header()),
                Span::raw(size(o.rss_bytes)),
                Span::styled(
                    format!(
                        "  peak {}  VMS {}",
                        size(o.peak_rss_bytes),
                        size(o.vms_bytes)
                    ),
                    theme::dim(),
                ),
            ]),
            Line::from(vec![
                Span::styled("gc ", theme::header()),
                if enabled {
                    Span::raw("enabled")
                } else {
                    Span::styled("DISABLED", theme::warn())
                },
                Span::raw(format!(
                    "  counts {}  thresholds {}",
                    list(gc.get("counts").unwrap_or(&Value::Null)),
                    list(gc.get("thresholds").unwrap_or(&Value::Null))
                )),
            ]),
            Line::from(Span::styled(
                format!(
                    "   collections {}  collected {}  uncollectable {}  garbage {}",
                    list(gc.get("collections").unwrap_or(&Value::Null)),
                    list(gc.get("collected").unwrap_or(&Value::Null)),
                    list(gc.get("uncollectable").unwrap_or(&Value::Null)),
                    gc.get("garbage")
                        .map_or_else(|| "?".into(), Value::to_string)
                ),
                theme::dim(),
            )),
        ];
        let tm_line = if tracing {
            let traced = tm.get("traced_bytes").and_then(Value::as_u64);
            let peak = tm.get("peak_bytes").and_then(Value::as_u64);
            let by = tm.get("started_by").and_then(Value::as_str).unwrap_or("?");
            Line::from(vec![
                Span::styled("tracemalloc ", theme::header()),
                Span::styled("tracing", theme::good()),
                Span::raw(format!(
                    " (started by {by})  traced {}  peak {}",
                    size(traced),
                    size(peak)
                )),
            ])
        } else {
            Line::from(vec![
                Span::styled("tracemalloc ", theme::header()),
                Span::raw("off"),
                Span::styled("  t: start it", theme::dim()),
            ])
        };
        lines.push(tm_line);
        if o.scan.scan_truncated {
            lines.push(Line::from(Span::styled(
                format!(
                    "the object walk stopped early ({}): counts are partial",
                    o.scan.scan_stopped_by.as_deref().unwrap_or("a bound")
                ),
                theme::warn(),
            )));
        }
        lines
    }

    fn render_types(&self, frame: &mut Frame<'_>, area: Rect, o: &MemoryOverview) {
        let rows = o.types.iter().map(|t| {
            Row::new(vec![
                Cell::from(t.type_name.clone()).style(theme::name()),
                Cell::from(format!("{:>9}", t.count)),
                Cell::from(format!("{:>10}", theme::bytes(t.size))),
            ])
        });
        let table = Table::new(
            rows,
            [
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(10),
            ],
        )
        .header(Row::new(["type", "  objects", "   shallow"]).style(theme::header()))
        .block(
            Block::bordered()
                .title(format!(" objects by type ({} types) ", o.types_total))
                .border_style(theme::dim()),
        );
        frame.render_widget(table, area);
    }

    fn render_outcome(&self, frame: &mut Frame<'_>, area: Rect) {
        let block = Block::bordered()
            .title(" tracemalloc: t start  n snapshot  a top  d diff  x stop ")
            .border_style(theme::dim());
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if let Some((action, _)) = &self.action {
            let text = format!("{} …", action.name());
            frame.render_widget(Paragraph::new(Span::styled(text, theme::dim())), inner);
            return;
        }
        if let Some((action, error)) = &self.action_error {
            let text = vec![
                Line::from(Span::styled(
                    format!("{} failed: {error}", action.name()),
                    theme::error(),
                )),
                Line::from(Span::styled(action.fix(), theme::warn())),
            ];
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
            return;
        }
        match &self.outcome {
            None => frame.render_widget(
                Paragraph::new(Span::styled(
                    "t starts tracemalloc (it records each allocation's place from then on); n \
                     takes a snapshot, a lists the largest allocation sites, d what grew since \
                     the snapshot",
                    theme::dim(),
                ))
                .wrap(Wrap { trim: false }),
                inner,
            ),
            Some(Outcome::Tracing(state)) => {
                let text = if state.tracing {
                    format!(
                        "tracemalloc is tracing (started by {}{}, {} frame(s) per allocation)",
                        state.started_by.as_deref().unwrap_or("?"),
                        if state.already { ", already on" } else { "" },
                        state.nframe.unwrap_or(1)
                    )
                } else {
                    "tracemalloc is stopped".into()
                };
                frame.render_widget(Paragraph::new(text), inner);
            }
            Some(Outcome::Snapshot(s)) => {
                let text = format!(
                    "snapshot {} taken: {} traces, {}; d shows what changed since",
                    s.snapshot,
                    s.traces,
                    theme::bytes(s.total_size.max(0).unsigned_abs())
                );
                frame.render_widget(Paragraph::new(text), inner);
            }
            Some(Outcome::Top(top)) => {
                let title = format!(
                    "largest allocation sites: {} in {} blocks",
                    theme::bytes(top.total_size.max(0).unsigned_abs()),
                    top.total_count
                );
                stats_table(frame, inner, &title, &top.stats, false);
            }
            Some(Outcome::Diff(diff)) => {
                let title = format!(
                    "since snapshot {} ({:.0}s ago): {}{} (now {})",
                    diff.snapshot,
                    diff.elapsed,
                    if diff.total_size_diff >= 0 { "+" } else { "-" },
                    theme::bytes(diff.total_size_diff.unsigned_abs()),
                    theme::bytes(diff.total_size.max(0).unsigned_abs())
                );
                stats_table(frame, inner, &title, &diff.stats, true);
            }
        }
    }
}

fn signed_bytes(n: i64) -> String {
    let sign = if n > 0 {
        "+"
    } else if n < 0 {
        "-"
    } else {
        ""
    };
    format!("{sign}{}", theme::bytes(n.unsigned_abs()))
}

fn stats_table(
    frame: &mut Frame<'_>,
    area: Rect,
    title: &str,
    stats: &[AllocationStat],
    diff: bool,
) {
    let [title_area, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(Span::styled(title.to_owned(), theme::header())),
        title_area,
    );
    let rows = stats.iter().map(|s| {
        let place = match s.lineno {
            Some(line) => format!("{}:{line}", s.filename),
            None => s.filename.clone(),
        };
        let mut cells = vec![Cell::from(format!(
            "{:>10}",
            theme::bytes(s.size.max(0).unsigned_abs())
        ))];
        if diff {
            let change = s.size_diff.unwrap_or(0);
            let style = if change > 0 {
                theme::warn()
            } else {
                Style::default()
            };
            cells.push(Cell::from(format!("{:>11}", signed_bytes(change))).style(style));
            cells.push(Cell::from(format!("{:>8}", s.count)));
            cells.push(Cell::from(format!("{:>+8}", s.count_diff.unwrap_or(0))));
        } else {
            cells.push(Cell::from(format!("{:>8}", s.count)));
            cells.push(Cell::from(format!(
                "{:>8}",
                s.average.map_or_else(|| "-".into(), |a| format!("{a} B"))
            )));
        }
        cells.push(Cell::from(place));
        Row::new(cells)
    });
    let (header, widths) = if diff {
        (
            vec!["      size", "     change", "  blocks", "  change", "where"],
            vec![
                Constraint::Length(10),
                Constraint::Length(11),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
    } else {
        (
            vec!["      size", "  blocks", " average", "where"],
            vec![
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
    };
    let table = Table::new(rows, widths).header(Row::new(header).style(theme::header()));
    frame.render_widget(table, table_area);
}

impl View for MemoryView {
    fn title(&self) -> &'static str {
        "memory"
    }

    fn hints(&self) -> &'static str {
        "r: refresh  t: start tracemalloc  n: snapshot  a: top  d: diff  x: stop"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [summary, middle, bottom] = Layout::vertical([
            Constraint::Length(5),
            Constraint::Fill(1),
            Constraint::Fill(1),
        ])
        .areas(area);
        match (&self.overview, &self.overview_error) {
            (_, Some(error)) => {
                let text = format!("reading the overview failed: {error} (r: try again)");
                frame.render_widget(theme::error_paragraph(text), summary);
            }
            (Some(o), None) => {
                frame.render_widget(Paragraph::new(self.overview_lines(o)), summary);
                self.render_types(frame, middle, o);
            }
            (None, None) => frame.render_widget(
                Paragraph::new(Span::styled(
                    "reading the overview (the walk over the objects takes up to 2 s)…",
                    theme::dim(),
                )),
                summary,
            ),
        }
        if self.overview.is_some() && self.overview_error.is_some() {
            if let Some(o) = &self.overview {
                self.render_types(frame, middle, o);
            }
        }
        self.render_outcome(frame, bottom);
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome {
        let action = match key.code {
            KeyCode::Char('r') => {
                self.refresh(ctx);
                return KeyOutcome::Consumed;
            }
            KeyCode::Char('t') => Action::Start,
            KeyCode::Char('n') => Action::Snapshot,
            KeyCode::Char('a') => Action::Top,
            KeyCode::Char('d') => Action::Diff,
            KeyCode::Char('x') => Action::Stop,
            _ => return KeyOutcome::Ignored,
        };
        self.run(action, ctx);
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, ctx: &Ctx, visible: bool) {
        if self.loading.first_shown(visible) {
            self.refresh(ctx);
        }
        if let Some(answer) = self.loading.take_answer() {
            match answer {
                Ok(overview) => {
                    self.overview = Some(overview);
                    self.overview_error = None;
                }
                Err(error) => self.overview_error = Some(error),
            }
        }
        if let Some((action, answer)) = RequestTask::take_answer_with(&mut self.action) {
            match answer {
                Ok(outcome) => {
                    let changes_state = matches!(outcome, Outcome::Tracing(_));
                    self.outcome = Some(outcome);
                    self.action_error = None;
                    if changes_state {
                        self.refresh(ctx);
                    }
                }
                Err(error) => self.action_error = Some((action, error)),
            }
        }
    }

    fn stop(&mut self) {
        self.loading.abandon();
        self.action = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn overview() -> MemoryOverview {
        serde_json::from_value(serde_json::json!({
            "rss_bytes": 48_234_496u64, "peak_rss_bytes": 52_000_000u64, "vms_bytes": 310_000_000u64,
            "gc": {"enabled": true, "counts": [412, 3, 1], "thresholds": [700, 10, 10],
                   "collections": [1200, 108, 9], "collected": [5400, 230, 12],
                   "uncollectable": [0, 0, 0], "garbage": 0},
            "tracemalloc": {"tracing": true, "started_by": "peeka", "nframe": 1,
                            "traced_bytes": 2_400_000u64, "peak_bytes": 3_100_000u64},
            "types": [
                {"type": "dict", "count": 18_231, "size": 4_120_000u64},
                {"type": "function", "count": 9_876, "size": 1_422_144u64},
                {"type": "shop.cart.Item", "count": 5_002, "size": 240_096u64},
                {"type": "list", "count": 3_120, "size": 310_000u64}
            ],
            "types_total": 412, "scanned": 61_000, "tracked": 61_000, "scan_truncated": false,
            "scan_stopped_by": null, "scan_ms": 42.0
        }))
        .unwrap()
    }

    fn diff() -> AllocationDiff {
        serde_json::from_value(serde_json::json!({
            "group_by": "lineno", "snapshot": 1, "total_size": 2_400_000, "total_size_diff": 512_000,
            "elapsed": 30.2, "stats": [
                {"filename": "/srv/shop/cart.py", "lineno": 31, "size": 812_000, "count": 5_002,
                 "size_diff": 480_000, "count_diff": 3_000},
                {"filename": "/srv/shop/cache.py", "lineno": 12, "size": 96_000, "count": 40,
                 "size_diff": 32_000, "count_diff": 10},
                {"filename": "/usr/lib/python3.12/json/decoder.py", "lineno": 353, "size": 4_000,
                 "count": 12, "size_diff": -1_200, "count_diff": -3}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn overview_and_a_diff() {
        let mut view = MemoryView::new();
        view.overview = Some(overview());
        view.outcome = Some(Outcome::Diff(diff()));
        let screen = draw_to_text(100, 24, |frame, area| view.render(frame, area));
        assert_screen("memory", &screen);
    }

    #[test]
    fn a_failed_action_says_what_to_press() {
        let mut view = MemoryView::new();
        view.overview = Some(overview());
        view.action_error = Some((
            Action::Diff,
            "agent error invalid_state for `memory`: no snapshot to compare with".into(),
        ));
        let screen = draw_to_text(60, 20, |frame, area| view.render(frame, area));
        assert_screen("memory_error", &screen);
        for (w, h) in [(1, 1), (10, 4), (40, 12)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
    }
}
