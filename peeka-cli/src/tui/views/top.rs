//! View 6, top: the functions the target spends its time in, sampled.
//!
//! While the view is on screen it runs one `top` cycle after another (one
//! sampling second each, never two at once) and shows the latest as a
//! table: own % (the function itself executing), total % (anywhere on the
//! stack), samples and times. `o` switches the ranking between own and
//! total, `p` pauses, Up/Down select a function (its file below).

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{TopFunction, TopRequest, TopSnapshot, TopSort};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::stream_feed::{FeedMsg, StreamFeed};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// How long one cycle samples.
const CYCLE: Duration = Duration::from_secs(1);
/// Functions asked for per cycle.
const LIMIT: u32 = 100;
/// How long to wait before trying again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The top view.
#[derive(Debug)]
pub(crate) struct TopView {
    sort: TopSort,
    paused: bool,
    feed: Option<StreamFeed<TopSnapshot>>,
    snapshot: Option<TopSnapshot>,
    error: Option<String>,
    retry_at: Option<Instant>,
    selected: usize,
}

impl Default for TopView {
    fn default() -> Self {
        Self::new()
    }
}

impl TopView {
    /// A top view; sampling starts when it is first on screen.
    pub(crate) fn new() -> Self {
        Self {
            sort: TopSort::Own,
            paused: false,
            feed: None,
            snapshot: None,
            error: None,
            retry_at: None,
            selected: 0,
        }
    }

    fn start_cycle(&mut self, ctx: &Ctx) {
        let request = TopRequest::new()
            .cycles(1)
            .report_interval(CYCLE)
            .sort(self.sort)
            .limit(LIMIT);
        self.feed = Some(StreamFeed::start(ctx, move |session| async move {
            session.top(&request).await
        }));
    }

    fn take(&mut self, message: FeedMsg<TopSnapshot>) {
        match message {
            FeedMsg::Item(mut snapshot) => {
                sort(&mut snapshot.functions, self.sort);
                self.snapshot = Some(snapshot);
                self.error = None;
            }
            FeedMsg::Failed(error) => {
                self.error = Some(error);
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                self.feed = None;
            }
            FeedMsg::Ended(_) => self.feed = None,
            FeedMsg::Opened(_) | FeedMsg::Event(_) => {}
        }
    }

    fn toggle_sort(&mut self) {
        self.sort = if self.sort == TopSort::Own {
            TopSort::Total
        } else {
            TopSort::Own
        };
        if let Some(snapshot) = &mut self.snapshot {
            sort(&mut snapshot.functions, self.sort);
        }
    }

    /// The sampling's state and the ranking, for the right of the top line.
    fn mode(&self) -> Line<'static> {
        let sort = if self.sort == TopSort::Own {
            "own"
        } else {
            "total"
        };
        let state = if self.paused {
            Span::styled("paused (p)", theme::warn())
        } else {
            Span::styled(format!("live, {}s cycles", CYCLE.as_secs()), theme::good())
        };
        Line::from(vec![
            state,
            Span::styled(format!("  by {sort} (o)"), theme::dim()),
        ])
    }

    fn summary(&self) -> Line<'static> {
        let Some(s) = &self.snapshot else {
            return Line::from(Span::styled(
                "sampling every thread for a second…",
                theme::dim(),
            ));
        };
        Line::from(vec![
            Span::styled(theme::clock(s.timestamp), theme::dim()),
            Span::raw(format!(
                " {} samples, {} thread(s), {:.1}s, {} idle left out, {} functions",
                s.total_samples, s.threads, s.elapsed, s.idle_samples, s.function_count
            )),
        ])
    }

    fn render_table(&self, frame: &mut Frame<'_>, area: Rect, functions: &[TopFunction]) {
        let wide = area.width >= 80;
        let rows: Vec<Row<'_>> = functions
            .iter()
            .map(|f| {
                let own_style = if f.own_pct >= 50.0 {
                    theme::error()
                } else if f.own_pct >= 10.0 {
                    theme::warn()
                } else {
                    Style::default()
                };
                let mut cells = vec![
                    Cell::from(format!("{:>6.1}%", f.own_pct)).style(own_style),
                    Cell::from(format!("{:>6.1}%", f.total_pct)),
                ];
                if wide {
                    cells.push(Cell::from(format!("{:>7}", f.own_count)));
                    cells.push(Cell::from(format!("{:>7}", f.total_count)));
                }
                cells.push(Cell::from(f.name.clone()).style(theme::name()));
                if wide {
                    cells.push(Cell::from(place(f)).style(theme::dim()));
                }
                Row::new(cells)
            })
            .collect();
        let mut header = vec!["   own%", " total%"];
        let mut widths = vec![Constraint::Length(7), Constraint::Length(7)];
        if wide {
            header.extend(["    own", "  total"]);
            widths.extend([Constraint::Length(7), Constraint::Length(7)]);
        }
        header.push("function");
        widths.push(Constraint::Fill(2));
        if wide {
            header.push("file:line");
            widths.push(Constraint::Fill(1));
        }
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(theme::header()))
            .row_highlight_style(theme::selected())
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = TableState::default()
            .with_selected(Some(self.selected.min(functions.len().saturating_sub(1))));
        frame.render_stateful_widget(table, area, &mut state);
    }
}

/// `cart.py:12` (the file's name only).
fn place(f: &TopFunction) -> String {
    match (&f.filename, f.line) {
        (Some(file), Some(line)) => {
            format!("{}:{line}", theme::file_name(file))
        }
        _ => String::new(),
    }
}

fn sort(functions: &mut [TopFunction], by: TopSort) {
    let key = |f: &TopFunction| match by {
        TopSort::Total | TopSort::TotalTime => (f.total_count, f.own_count),
        _ => (f.own_count, f.total_count),
    };
    functions.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
}

impl View for TopView {
    fn title(&self) -> &'static str {
        "top"
    }

    fn hints(&self) -> &'static str {
        "o: sort own/total  p: pause  ↑↓: select"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [summary, error, body, detail] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(if self.error.is_some() { 3 } else { 0 }),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let [summary, mode] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(30)]).areas(summary);
        frame.render_widget(Paragraph::new(self.summary()), summary);
        frame.render_widget(Paragraph::new(self.mode()).right_aligned(), mode);
        if let Some(e) = &self.error {
            let text = format!("top failed: {e} (trying again in a few seconds; r: now)");
            frame.render_widget(theme::error_paragraph(text), error);
        }
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        if snapshot.functions.is_empty() {
            frame.render_widget(
                Paragraph::new(Span::styled(
                    "no thread used CPU in the last cycle (waiting threads are left out)",
                    theme::dim(),
                )),
                body,
            );
            return;
        }
        self.render_table(frame, body, &snapshot.functions);
        if let Some(f) = snapshot.functions.get(self.selected) {
            let file = match (&f.filename, f.line) {
                (Some(file), Some(line)) => format!("{file}:{line}"),
                _ => "no file".into(),
            };
            let text = format!(
                "{}: {} own / {} total samples ({:.2}s / {:.2}s), {file}",
                f.name, f.own_count, f.total_count, f.own_time, f.total_time
            );
            frame.render_widget(Paragraph::new(Span::styled(text, theme::dim())), detail);
        }
    }

    fn on_key(&mut self, key: KeyEvent, _ctx: &Ctx) -> KeyOutcome {
        let count = self.snapshot.as_ref().map_or(0, |s| s.functions.len());
        match key.code {
            KeyCode::Char('o') => self.toggle_sort(),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('r') => self.retry_at = None,
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => self.selected = (self.selected + 1).min(count.saturating_sub(1)),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(count.saturating_sub(1)),
            KeyCode::Home => self.selected = 0,
            _ => return KeyOutcome::Ignored,
        }
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, ctx: &Ctx, visible: bool) {
        if let Some(feed) = &mut self.feed {
            for message in feed.drain(8) {
                self.take(message);
            }
        }
        let waiting = self.retry_at.is_some_and(|at| Instant::now() < at);
        if visible && !self.paused && self.feed.is_none() && !waiting {
            self.retry_at = None;
            self.start_cycle(ctx);
        }
    }

    fn stop(&mut self) {
        if let Some(feed) = &self.feed {
            feed.stop();
        }
        self.paused = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn function(name: &str, line: u32, own: u64, total: u64) -> TopFunction {
        serde_json::from_value(serde_json::json!({
            "name": name, "filename": format!("/srv/shop/{}.py", name.split('.').nth(1).unwrap_or("main")),
            "line": line, "own_count": own, "total_count": total,
            "own_pct": own as f64 / 2.0, "total_pct": total as f64 / 2.0,
            "own_time": own as f64 * 0.01, "total_time": total as f64 * 0.01
        }))
        .unwrap()
    }

    fn snapshot() -> TopSnapshot {
        serde_json::from_value(serde_json::json!({
            "cycle": 1, "timestamp": 1795000000.5, "sample_interval": 0.01, "elapsed": 1.0,
            "ticks": 100, "total_samples": 200, "idle_samples": 350, "threads": 2,
            "function_count": 14,
            "functions": [
                function("shop.pricing.price", 7, 122, 130), function("shop.cart.Cart.total", 18, 30, 160),
                function("shop.db.query", 90, 24, 26), function("shop.main.serve", 3, 2, 200),
                function("shop.stock.reserve", 55, 12, 40),
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_hot_functions_sorted_by_own_then_total() {
        let mut view = TopView::new();
        let mut s = snapshot();
        sort(&mut s.functions, TopSort::Own);
        view.snapshot = Some(s);
        view.selected = 1;
        let screen = draw_to_text(100, 10, |frame, area| view.render(frame, area));
        assert_screen("top", &screen);
        view.toggle_sort();
        let names: Vec<_> = view
            .snapshot
            .as_ref()
            .unwrap()
            .functions
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names[0], "shop.main.serve");
        view.error = Some("agent error invalid_params for `top`: ...".into());
        let screen = draw_to_text(40, 12, |frame, area| view.render(frame, area));
        assert_screen("top_small_error", &screen);
        for (w, h) in [(1, 1), (5, 2), (30, 4)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
    }
}
