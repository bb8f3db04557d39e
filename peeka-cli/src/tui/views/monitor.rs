//! View 5, monitor: call statistics of a function per interval, with a
//! chart of calls and latency over time.
//!
//! Type a pattern (`e`), Enter starts a `monitor` stream with the chosen
//! interval (`i` changes it, for the next start). Each cycle brings one
//! report per function matched: the table shows the latest of each
//! (Up/Down select one), the charts the selected function's calls per
//! interval and its latency (average, p95, max) over the last cycles. `s`
//! stops (the agent removes the probe).

use std::collections::VecDeque;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{MonitorReport, MonitorRequest};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Dataset, GraphType, HighlightSpacing, Paragraph, Row, Table,
    TableState,
};
use ratatui::Frame;

use super::stream_state::{StreamSlot, StreamState};
use crate::tui::pattern_input::{InputEvent, PatternInput};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Cycles kept per function.
const HISTORY: usize = 120;
/// Functions kept.
const MAX_FUNCTIONS: usize = 50;
/// The intervals `i` cycles through, in seconds.
const INTERVALS: [u64; 6] = [1, 2, 5, 10, 30, 60];

/// One monitored function and its last reports, oldest first.
#[derive(Debug)]
struct Series {
    function: String,
    reports: VecDeque<MonitorReport>,
}

/// The monitor view.
#[derive(Debug)]
pub(crate) struct MonitorView {
    input: PatternInput,
    interval: usize,
    stream: StreamSlot<MonitorReport>,
    series: Vec<Series>,
    selected: usize,
}

impl Default for MonitorView {
    fn default() -> Self {
        Self::new()
    }
}

impl MonitorView {
    /// A monitor view with nothing started.
    pub(crate) fn new() -> Self {
        Self {
            input: PatternInput::new("module.function or module.Class.method"),
            interval: 1,
            stream: StreamSlot::new(),
            series: Vec::new(),
            selected: 0,
        }
    }

    fn start(&mut self, ctx: &Ctx) {
        let Some(pattern) = self.input.value_or_focus() else {
            return;
        };
        let request = MonitorRequest::new(pattern.clone())
            .interval(Duration::from_secs(INTERVALS[self.interval]));
        self.stream.open(ctx, pattern, move |session| async move {
            session.monitor(&request).await
        });
        self.series.clear();
        self.selected = 0;
    }

    fn add(&mut self, report: MonitorReport) {
        let index = match self
            .series
            .iter()
            .position(|s| s.function == report.func_name)
        {
            Some(index) => index,
            None if self.series.len() < MAX_FUNCTIONS => {
                self.series.push(Series {
                    function: report.func_name.clone(),
                    reports: VecDeque::new(),
                });
                self.series.len() - 1
            }
            None => return,
        };
        let reports = &mut self.series[index].reports;
        reports.push_back(report);
        if reports.len() > HISTORY {
            reports.pop_front();
        }
    }

    fn render_table(&self, frame: &mut Frame<'_>, area: Rect) {
        let level = if area.width >= 100 {
            2
        } else if area.width >= 64 {
            1
        } else {
            0
        };
        let ms = |value: f64| {
            Cell::from(format!("{:>8}", theme::duration_ms(value))).style(theme::cost_style(value))
        };
        let rows: Vec<Row<'_>> = self
            .series
            .iter()
            .filter_map(|s| s.reports.back().map(|r| (s, r)))
            .map(|(s, r)| {
                let fail_style = if r.fail > 0 {
                    theme::error()
                } else {
                    Style::default()
                };
                let mut cells = vec![
                    Cell::from(s.function.clone()).style(theme::name()),
                    Cell::from(format!("{:>7}", r.total)),
                ];
                if level >= 1 {
                    cells.push(Cell::from(format!("{:>7}", r.success)));
                }
                cells.push(Cell::from(format!("{:>5}", r.fail)).style(fail_style));
                if level >= 1 {
                    cells.push(
                        Cell::from(format!("{:>5.1}%", r.fail_rate * 100.0)).style(fail_style),
                    );
                }
                cells.push(ms(r.rt_avg));
                if level >= 2 {
                    cells.extend([r.rt_min, r.rt_max, r.rt_p50, r.rt_p95, r.rt_p99].map(ms));
                }
                Row::new(cells)
            })
            .collect();
        let mut header = vec!["function", "  calls"];
        let mut widths = vec![Constraint::Min(10), Constraint::Length(7)];
        if level >= 1 {
            header.push("success");
            widths.push(Constraint::Length(7));
        }
        header.push(" fail");
        widths.push(Constraint::Length(5));
        if level >= 1 {
            header.push(" fail%");
            widths.push(Constraint::Length(6));
        }
        header.push("     avg");
        widths.push(Constraint::Length(8));
        if level >= 2 {
            header.extend(["     min", "     max", "     p50", "     p95", "     p99"]);
            widths.extend([Constraint::Length(8); 5]);
        }
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(theme::header()))
            .row_highlight_style(theme::selected())
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = TableState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(table, area, &mut state);
    }

    fn render_charts(&self, frame: &mut Frame<'_>, area: Rect) {
        let Some(series) = self.series.get(self.selected) else {
            return;
        };
        let [calls_area, latency_area] = if area.width >= 70 {
            Layout::horizontal([Constraint::Percentage(50); 2]).areas(area)
        } else {
            Layout::vertical([Constraint::Percentage(50); 2]).areas(area)
        };
        let points = |value: fn(&MonitorReport) -> f64| -> Vec<(f64, f64)> {
            series
                .reports
                .iter()
                .map(|r| (r.cycle as f64, value(r)))
                .collect()
        };
        let calls = points(|r| r.total as f64);
        let avg = points(|r| r.rt_avg);
        let p95 = points(|r| r.rt_p95);
        let max = points(|r| r.rt_max);
        let first = series.reports.front().map_or(0.0, |r| r.cycle as f64);
        let last = series
            .reports
            .back()
            .map_or(1.0, |r| r.cycle as f64)
            .max(first + 1.0);
        let x_axis = || {
            Axis::default()
                .bounds([first, last])
                .labels([format!("{first:.0}"), format!("cycle {last:.0}")])
                .style(theme::dim())
        };
        let top =
            |data: &[(f64, f64)]| data.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
        let calls_top = top(&calls).max(1.0);
        let chart = Chart::new(vec![chart_line("calls", Color::Cyan, &calls)])
            .block(
                Block::bordered()
                    .title(" calls per interval ")
                    .border_style(theme::dim()),
            )
            .x_axis(x_axis())
            .y_axis(
                Axis::default()
                    .bounds([0.0, calls_top])
                    .labels(["0".to_owned(), format!("{calls_top:.0}")])
                    .style(theme::dim()),
            )
            .legend_position(None);
        frame.render_widget(chart, calls_area);
        let latency_top = top(&max);
        let chart = Chart::new(vec![
            chart_line("max", Color::Red, &max),
            chart_line("p95", Color::Yellow, &p95),
            chart_line("avg", Color::Green, &avg),
        ])
        .block(
            Block::bordered()
                .title(" latency: avg (green) p95 (yellow) max (red) ")
                .border_style(theme::dim()),
        )
        .x_axis(x_axis())
        .y_axis(
            Axis::default()
                .bounds([0.0, latency_top])
                .labels(["0".to_owned(), theme::duration_ms(latency_top)])
                .style(theme::dim()),
        )
        .legend_position(None);
        frame.render_widget(chart, latency_area);
    }
}

/// One series of a chart, drawn as a line in `color`.
fn chart_line<'a>(name: &'static str, color: Color, data: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default()
        .name(name)
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(color))
        .data(data)
}

impl View for MonitorView {
    fn title(&self) -> &'static str {
        "monitor"
    }

    fn hints(&self) -> &'static str {
        "e: pattern  enter: start  i: interval  ↑↓: function  s: stop"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let table_rows = u16::try_from(self.series.len().clamp(1, 6)).unwrap_or(6) + 1;
        let [input, status, table, charts] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Length(table_rows),
            Constraint::Fill(1),
        ])
        .areas(area);
        let [status, options] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(16)]).areas(status);
        let hint = "e: type a pattern, enter: monitor its calls per interval";
        let mut state_line = self.stream.state.line("monitoring", hint);
        if self.stream.dropped > 0 {
            state_line.push_span(Span::styled(
                format!(
                    "  {} reports not shown (came too fast)",
                    self.stream.dropped
                ),
                theme::warn(),
            ));
        }
        frame.render_widget(Paragraph::new(state_line), status);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("i", theme::key()),
                Span::raw(format!(" interval {}s", INTERVALS[self.interval])),
            ]))
            .right_aligned(),
            options,
        );
        if let StreamState::Failed(error) = &self.stream.state {
            frame.render_widget(theme::error_paragraph(error.clone()), table.union(charts));
        } else if self.series.is_empty() {
            let waiting = self.stream.waiting(|| {
                format!(
                    "the first figures come at the end of the first interval ({}s)",
                    INTERVALS[self.interval]
                )
            });
            if let Some(waiting) = waiting {
                frame.render_widget(waiting, table);
            }
        } else {
            self.render_table(frame, table);
            self.render_charts(frame, charts);
        }
        self.input.render(frame, input);
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome {
        if let Some(event) = self.input.on_key_if_focused(key, ctx) {
            if let InputEvent::Submitted(_) = event {
                self.start(ctx);
            }
            return event.outcome();
        }
        match key.code {
            KeyCode::Char('e') | KeyCode::Char('/') => self.input.focus(),
            KeyCode::Enter | KeyCode::Char('r') => self.start(ctx),
            KeyCode::Char('s') => self.stream.stop(),
            KeyCode::Char('i') => self.interval = (self.interval + 1) % INTERVALS.len(),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => {
                self.selected = (self.selected + 1).min(self.series.len().saturating_sub(1));
            }
            _ => return KeyOutcome::Ignored,
        }
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, _ctx: &Ctx, _visible: bool) {
        self.input.on_tick();
        for report in self.stream.drain() {
            self.add(report);
        }
    }

    fn is_editing(&self) -> bool {
        self.input.is_focused()
    }

    fn stop(&mut self) {
        self.stream.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn report(function: &str, cycle: u64, total: u64, fail: u64, avg: f64) -> MonitorReport {
        serde_json::from_value(serde_json::json!({
            "func_name": function, "cycle": cycle, "timestamp": 1795000000.0 + cycle as f64,
            "total": total, "success": total - fail, "fail": fail,
            "fail_rate": if total > 0 { fail as f64 / total as f64 } else { 0.0 },
            "rt_avg": avg, "rt_min": avg / 4.0, "rt_max": avg * 3.0,
            "rt_p50": avg * 0.9, "rt_p95": avg * 2.0, "rt_p99": avg * 2.6
        }))
        .unwrap()
    }

    fn running_view() -> MonitorView {
        let mut view = MonitorView::new();
        view.input.set_value("shop.cart.Cart.*");
        view.stream.state = StreamState::Running {
            pattern: "shop.cart.Cart.*".into(),
            matched: vec!["shop.cart.Cart.total".into(), "shop.cart.Cart.add".into()],
            backend: Some("monitoring".into()),
        };
        for cycle in 1..=30u64 {
            let wave = (cycle as f64 / 4.0).sin();
            view.add(report(
                "shop.cart.Cart.total",
                cycle,
                1500 + (wave * 400.0) as u64,
                if cycle % 5 == 0 { 3 } else { 0 },
                0.2 + wave.abs() * 0.3,
            ));
            view.add(report("shop.cart.Cart.add", cycle, 300, 0, 0.05));
        }
        view
    }

    #[test]
    fn the_latest_cycle_and_charts_over_time() {
        let mut view = running_view();
        let screen = draw_to_text(110, 24, |frame, area| view.render(frame, area));
        assert_screen("monitor", &screen);
    }

    #[test]
    fn history_is_bounded_and_small_sizes_draw() {
        let mut view = running_view();
        for cycle in 31..400 {
            view.add(report("shop.cart.Cart.total", cycle, 10, 0, 0.1));
        }
        for n in 0..100 {
            view.add(report(&format!("m.f{n}"), 1, 1, 0, 0.1));
        }
        assert_eq!(view.series[0].reports.len(), HISTORY);
        assert_eq!(view.series.len(), MAX_FUNCTIONS);
        let screen = draw_to_text(40, 12, |frame, area| view.render(frame, area));
        assert_screen("monitor_small", &screen);
        for (w, h) in [(1, 1), (8, 4), (70, 8)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
    }
}
