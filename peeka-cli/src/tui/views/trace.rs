//! View 3, trace: the call tree below each call of a function, timed.
//!
//! Type a pattern (`e`), Enter starts a `trace` stream; each traced call
//! yields a tree. The latest is shown (`[` and `]` step through the last
//! few), as a collapsible table: Up/Down move, Left/Right or Enter fold and
//! unfold; each node is coloured by its share of the root's time (red above
//! half, yellow above a fifth). `d`, `m`, `n`, `b` change the depth, the
//! minimum duration, the number of calls and whether the standard library
//! is left out, for the next start. `s` stops (the agent removes the probe).

mod tree;

use std::collections::{HashSet, VecDeque};

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{TraceNode, TraceObservation, TraceRequest};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use self::tree::{rows, share, NodePath};
use super::stream_state::{StreamSlot, StreamState};
use crate::tui::pattern_input::{InputEvent, PatternInput};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Traced calls kept to step through.
const HISTORY: usize = 20;
const DEPTHS: [Option<u32>; 6] = [None, Some(1), Some(2), Some(5), Some(8), Some(12)];
const MIN_MS: [Option<f64>; 5] = [None, Some(0.1), Some(1.0), Some(10.0), Some(100.0)];
const TIMES: [Option<u64>; 5] = [None, Some(1), Some(5), Some(20), Some(100)];

/// The trace view.
#[derive(Debug)]
pub(crate) struct TraceView {
    input: PatternInput,
    depth: usize,
    min_ms: usize,
    times: usize,
    with_builtins: bool,
    stream: StreamSlot<TraceObservation>,
    /// The last traced calls, oldest first.
    history: VecDeque<TraceObservation>,
    /// The call shown, counted back from the newest (0: follow the newest).
    back: usize,
    folded: HashSet<NodePath>,
    selected: usize,
    received: u64,
}

impl Default for TraceView {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceView {
    /// A trace view with nothing started.
    pub(crate) fn new() -> Self {
        Self {
            input: PatternInput::new("module.function or module.Class.method"),
            depth: 0,
            min_ms: 0,
            times: 0,
            with_builtins: false,
            stream: StreamSlot::new(),
            history: VecDeque::new(),
            back: 0,
            folded: HashSet::new(),
            selected: 0,
            received: 0,
        }
    }

    fn request(&self, pattern: &str) -> TraceRequest {
        let mut request = TraceRequest::new(pattern);
        if let Some(depth) = DEPTHS[self.depth] {
            request = request.depth(depth);
        }
        if let Some(ms) = MIN_MS[self.min_ms] {
            request = request.min_duration(ms);
        }
        if let Some(n) = TIMES[self.times] {
            request = request.times(n);
        }
        if self.with_builtins {
            request = request.skip_builtin(false);
        }
        request
    }

    fn start(&mut self, ctx: &Ctx) {
        let Some(pattern) = self.input.value_or_focus() else {
            return;
        };
        let request = self.request(&pattern);
        self.stream.open(ctx, pattern, move |session| async move {
            session.trace(&request).await
        });
        self.history.clear();
        self.back = 0;
        self.selected = 0;
        self.received = 0;
    }

    /// The traced call on screen.
    fn shown(&self) -> Option<&TraceObservation> {
        let newest = self.history.len().checked_sub(1)?;
        self.history.get(newest.saturating_sub(self.back))
    }

    fn add(&mut self, observation: TraceObservation) {
        self.received += 1;
        self.history.push_back(observation);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        if self.back > 0 {
            // Keep the same call on screen while stepping back.
            self.back = (self.back + 1).min(self.history.len() - 1);
        }
    }

    fn visible_rows(&self) -> usize {
        self.shown()
            .map_or(0, |o| rows(&o.call_tree, &self.folded).len())
    }

    fn selected_path(&self) -> Option<(NodePath, bool)> {
        let shown = self.shown()?;
        let all = rows(&shown.call_tree, &self.folded);
        let row = all.get(self.selected.min(all.len().saturating_sub(1)))?;
        Some((row.path.clone(), !row.node.children.is_empty()))
    }

    fn fold(&mut self, close: Option<bool>) {
        let Some((path, has_children)) = self.selected_path() else {
            return;
        };
        let is_folded = self.folded.contains(&path);
        let close = close.unwrap_or(!is_folded);
        if close && has_children && !is_folded {
            self.folded.insert(path);
        } else if close && !path.is_empty() {
            // Already closed, or a leaf: go to the parent.
            let parent = &path[..path.len() - 1];
            if let Some(shown) = self.shown() {
                if let Some(at) = rows(&shown.call_tree, &self.folded)
                    .iter()
                    .position(|r| r.path == parent)
                {
                    self.selected = at;
                }
            }
        } else if !close {
            self.folded.remove(&path);
        }
    }

    fn move_by(&mut self, delta: isize) {
        let count = self.visible_rows();
        if count == 0 {
            return;
        }
        let at = self.selected.min(count - 1) as isize + delta;
        self.selected = at.clamp(0, count as isize - 1) as usize;
    }

    fn options_line(&self) -> Line<'static> {
        let depth = DEPTHS[self.depth].map_or_else(|| "3".into(), |d| d.to_string());
        let min = MIN_MS[self.min_ms].map_or_else(|| "0".into(), |m| format!("{m}ms"));
        let times = TIMES[self.times].map_or_else(|| "no limit".into(), |n| n.to_string());
        let builtins = if self.with_builtins {
            "shown"
        } else {
            "hidden"
        };
        Line::from(vec![
            Span::styled("d", theme::key()),
            Span::raw(format!(" depth {depth}  ")),
            Span::styled("m", theme::key()),
            Span::raw(format!(" min {min}  ")),
            Span::styled("n", theme::key()),
            Span::raw(format!(" calls {times}  ")),
            Span::styled("b", theme::key()),
            Span::raw(format!(" stdlib/C {builtins}")),
        ])
    }

    fn header_line(&self, o: &TraceObservation) -> Line<'static> {
        let mut spans = vec![
            Span::styled(theme::clock(o.timestamp), theme::dim()),
            Span::raw(" "),
            Span::styled(o.func_name.clone(), theme::name()),
            Span::raw(" "),
            Span::styled(
                theme::duration_ms(o.total_duration_ms),
                theme::cost_style(o.total_duration_ms),
            ),
            Span::styled(
                format!(
                    " [{}] {} nodes  call {}/{} ([ ] older/newer), {} traced",
                    o.thread_name,
                    o.node_count,
                    self.history.len() - self.back,
                    self.history.len(),
                    self.received
                ),
                theme::dim(),
            ),
        ];
        if let Some(thrown) = &o.throw_exp {
            spans.push(Span::styled(format!(" {thrown}"), theme::error()));
        }
        if self.stream.dropped > 0 {
            spans.push(Span::styled(
                format!(
                    " ({} calls not shown: they came faster than drawn)",
                    self.stream.dropped
                ),
                theme::warn(),
            ));
        }
        if o.dropped_calls > 0 {
            spans.push(Span::styled(
                format!(" ({} calls beyond the node limit)", o.dropped_calls),
                theme::warn(),
            ));
        }
        Line::from(spans)
    }

    fn render_tree(&self, frame: &mut Frame<'_>, area: Rect, o: &TraceObservation) {
        let all = rows(&o.call_tree, &self.folded);
        let root_ms = o.call_tree.duration_ms;
        let wide = area.width >= 90;
        let medium = area.width >= 80;
        let table_rows: Vec<Row<'_>> = all
            .iter()
            .map(|r| {
                let marker = if r.node.children.is_empty() {
                    "  "
                } else if r.folded {
                    "▸ "
                } else {
                    "▾ "
                };
                let name = format!("{}{marker}{}", "  ".repeat(r.depth), r.node.function);
                let pct = share(r.node, root_ms);
                let style = if pct > 50.0 {
                    theme::error()
                } else if pct > 20.0 {
                    theme::warn()
                } else {
                    Style::default()
                };
                let mut cells = vec![Cell::from(name)];
                if wide {
                    cells.push(Cell::from(place(r.node)));
                }
                cells.push(Cell::from(format!("{:>6}", r.node.count)));
                cells.push(Cell::from(format!(
                    "{:>9}",
                    theme::duration_ms(r.node.duration_ms)
                )));
                if medium {
                    cells.push(Cell::from(format!(
                        "{:>9}",
                        theme::duration_ms(r.node.min_ms)
                    )));
                    cells.push(Cell::from(format!(
                        "{:>9}",
                        theme::duration_ms(r.node.max_ms)
                    )));
                }
                cells.push(Cell::from(format!(
                    "{:>9}",
                    theme::duration_ms(r.node.self_ms)
                )));
                Row::new(cells).style(style)
            })
            .collect();
        let mut widths = vec![Constraint::Fill(1)];
        let mut header = vec!["function"];
        if wide {
            widths.push(Constraint::Length(22));
            header.push("file:line");
        }
        widths.push(Constraint::Length(6));
        header.push(" count");
        widths.push(Constraint::Length(9));
        header.push("    total");
        if medium {
            widths.extend([Constraint::Length(9), Constraint::Length(9)]);
            header.extend(["      min", "      max"]);
        }
        widths.push(Constraint::Length(9));
        header.push("     self");
        let table = Table::new(table_rows, widths)
            .header(Row::new(header).style(theme::header()))
            .row_highlight_style(theme::selected())
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = TableState::default()
            .with_selected(Some(self.selected.min(all.len().saturating_sub(1))));
        frame.render_stateful_widget(table, area, &mut state);
    }

    fn detail_line(&self) -> Line<'static> {
        let Some(o) = self.shown() else {
            return Line::default();
        };
        let all = rows(&o.call_tree, &self.folded);
        let Some(row) = all.get(self.selected.min(all.len().saturating_sub(1))) else {
            return Line::default();
        };
        let n = row.node;
        let defined = match (&n.filename, n.lineno) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            _ => "a C function".into(),
        };
        let called = match (&n.call_filename, n.call_lineno) {
            (Some(file), Some(line)) if !row.path.is_empty() => {
                format!(", called at {file}:{line}")
            }
            _ => String::new(),
        };
        Line::from(Span::styled(
            format!(
                "{}: {:.1}% of the call, defined at {defined}{called}",
                n.function,
                share(n, o.call_tree.duration_ms)
            ),
            theme::dim(),
        ))
    }
}

/// `file.py:12` (the file's name only), or `builtin`.
fn place(node: &TraceNode) -> String {
    match (&node.filename, node.lineno) {
        (Some(file), Some(line)) => format!("{}:{line}", theme::file_name(file)),
        _ => "builtin".into(),
    }
}

impl View for TraceView {
    fn title(&self) -> &'static str {
        "trace"
    }

    fn hints(&self) -> &'static str {
        "e: pattern  enter: start/fold  ←→: fold  [ ]: older/newer  d m n b: options  s: stop"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [input, options, status, header, body, detail] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(self.options_line()), options);
        let hint = "e: type a pattern (module.function), enter: trace its calls";
        frame.render_widget(
            Paragraph::new(self.stream.state.line("tracing", hint)),
            status,
        );
        if let Some(o) = self.shown() {
            frame.render_widget(Paragraph::new(self.header_line(o)), header);
            self.render_tree(frame, body, o);
            frame.render_widget(Paragraph::new(self.detail_line()), detail);
        } else if let StreamState::Failed(error) = &self.stream.state {
            frame.render_widget(theme::error_paragraph(error.clone()), header.union(body));
        } else if let Some(waiting) = self
            .stream
            .waiting(|| "waiting for a call of the traced function…".into())
        {
            frame.render_widget(waiting, header);
        }
        if let (Some(note), Some(_)) = (&self.stream.note, self.shown()) {
            frame.render_widget(
                Paragraph::new(Span::styled(note.clone(), theme::warn())),
                detail,
            );
        }
        // Last, so that the completion popup is drawn over the rest.
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
            KeyCode::Enter if self.shown().is_some() => self.fold(None),
            KeyCode::Enter | KeyCode::Char('r') => self.start(ctx),
            KeyCode::Char('s') => self.stream.stop(),
            KeyCode::Char('d') => self.depth = (self.depth + 1) % DEPTHS.len(),
            KeyCode::Char('m') => self.min_ms = (self.min_ms + 1) % MIN_MS.len(),
            KeyCode::Char('n') => self.times = (self.times + 1) % TIMES.len(),
            KeyCode::Char('b') => self.with_builtins = !self.with_builtins,
            KeyCode::Char('[') => {
                self.back = (self.back + 1).min(self.history.len().saturating_sub(1));
            }
            KeyCode::Char(']') => self.back = self.back.saturating_sub(1),
            KeyCode::Up => self.move_by(-1),
            KeyCode::Down => self.move_by(1),
            KeyCode::PageUp => self.move_by(-10),
            KeyCode::PageDown => self.move_by(10),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = self.visible_rows().saturating_sub(1),
            KeyCode::Left => self.fold(Some(true)),
            KeyCode::Right => self.fold(Some(false)),
            _ => return KeyOutcome::Ignored,
        }
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, _ctx: &Ctx, _visible: bool) {
        self.input.on_tick();
        for observation in self.stream.drain() {
            self.add(observation);
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

    #[allow(clippy::too_many_arguments)]
    fn node(
        function: &str,
        place: Option<(&str, u32)>,
        called_at: u32,
        count: u64,
        [total, min, max, own]: [f64; 4],
        children: Vec<TraceNode>,
    ) -> TraceNode {
        let (file, line) = place.map_or((None, None), |(f, l)| (Some(f), Some(l)));
        serde_json::from_value(serde_json::json!({
            "function": function, "filename": file, "lineno": line,
            "call_filename": "/srv/shop/__init__.py", "call_lineno": called_at,
            "builtin": place.is_none(), "count": count, "duration_ms": total,
            "min_ms": min, "max_ms": max, "self_ms": own,
            "children": serde_json::to_value(children).unwrap(),
        }))
        .unwrap()
    }

    fn observation() -> TraceObservation {
        let price = node(
            "shop.pricing.price",
            Some(("/srv/shop/pricing.py", 7)),
            21,
            12,
            [6.9, 0.31, 1.9, 6.9],
            vec![],
        );
        let total = node(
            "shop.cart.Cart.total",
            Some(("/srv/shop/cart.py", 18)),
            44,
            1,
            [8.1, 8.1, 8.1, 1.2],
            vec![price],
        );
        let query = node(
            "shop.db.query",
            Some(("/srv/shop/db.py", 90)),
            60,
            2,
            [2.3, 1.1, 1.2, 2.3],
            vec![],
        );
        let reserve = node(
            "shop.stock.reserve",
            Some(("/srv/shop/stock.py", 55)),
            45,
            2,
            [3.2, 1.5, 1.7, 0.9],
            vec![query],
        );
        let dumps = node("json.dumps", None, 47, 1, [1.1, 1.1, 1.1, 1.1], vec![]);
        let root = node(
            "shop.checkout",
            Some(("/srv/shop/__init__.py", 40)),
            0,
            1,
            [12.8, 12.8, 12.8, 0.4],
            vec![total, reserve, dumps],
        );
        serde_json::from_value(serde_json::json!({
            "func_name": "shop.checkout", "location": "AtExit", "throwExp": null,
            "thread_id": 1, "thread_name": "MainThread", "timestamp": 1795000000.25,
            "total_duration_ms": 12.8, "node_count": 6, "dropped_calls": 0,
            "call_tree": serde_json::to_value(root).unwrap(),
        }))
        .unwrap()
    }

    fn running_view() -> TraceView {
        let mut view = TraceView::new();
        view.input.set_value("shop.checkout");
        view.stream.state = StreamState::Running {
            pattern: "shop.checkout".into(),
            matched: vec!["shop.checkout".into()],
            backend: Some("monitoring".into()),
        };
        view.history.push_back(observation());
        view.history.push_back(observation());
        view.received = 2;
        view
    }

    #[test]
    fn a_call_tree_with_colours_by_share() {
        let mut view = running_view();
        view.move_by(2);
        let screen = draw_to_text(100, 16, |frame, area| view.render(frame, area));
        assert_screen("trace_tree", &screen);
    }

    #[test]
    fn folding_and_stepping_back() {
        let mut view = running_view();
        view.move_by(3);
        view.fold(Some(true));
        assert_eq!(view.visible_rows(), 5);
        view.move_by(1);
        view.fold(Some(true));
        assert_eq!(view.selected, 0, "a leaf goes to its parent");
        view.move_by(3);
        view.fold(Some(false));
        assert_eq!(view.visible_rows(), 6);
        view.back = 1;
        view.add(observation());
        assert_eq!(view.back, 2);
        let screen = draw_to_text(60, 12, |frame, area| view.render(frame, area));
        assert_screen("trace_narrow", &screen);
    }

    #[test]
    fn errors_and_tiny_sizes() {
        let mut view = TraceView::new();
        view.stream.state = StreamState::Failed(
            "agent error not_found for `trace`: no function matches `shop.chekout`; close matches: shop.checkout".into(),
        );
        let screen = draw_to_text(50, 10, |frame, area| view.render(frame, area));
        assert_screen("trace_error", &screen);
        let mut view = running_view();
        for (w, h) in [(1, 1), (10, 3), (40, 12), (20, 30)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
    }
}
