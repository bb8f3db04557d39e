//! View 0, inspect: browse a live value by its path.
//!
//! Type a path (`e`; `shop.CONFIG.limits`, completed like a pattern),
//! Enter reads it (`inspect get`, two levels deep) and shows it as a tree:
//! Up/Down move, Right/Left open and close; on a value the capture did not
//! expand (`<dict len=3>`, `<shop.Item object at 0x..>`), Enter or Right
//! reads that sub-path deeper and grafts it in. `+`/`-` change the depth of
//! the next read. Nothing of the target runs: properties and
//! `__getattr__` are refused, with the reason shown.

mod value_tree;

use std::collections::{HashMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::InspectedValue;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{HighlightSpacing, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use self::value_tree::{rows, summary};
use super::request_task::RequestTask;
use crate::tui::pattern_input::{InputEvent, PatternInput};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Sub-paths read deeper kept at most.
const MAX_FETCHED: usize = 200;

/// The inspect view.
#[derive(Debug)]
pub(crate) struct InspectView {
    input: PatternInput,
    depth: u32,
    root: Option<InspectedValue>,
    fetched: HashMap<String, serde_json::Value>,
    open: HashSet<String>,
    selected: usize,
    /// The path being read, and the read.
    reading: Option<(String, RequestTask<InspectedValue>)>,
    error: Option<String>,
}

impl Default for InspectView {
    fn default() -> Self {
        Self::new()
    }
}

impl InspectView {
    /// An inspect view with nothing read.
    pub(crate) fn new() -> Self {
        Self {
            input: PatternInput::new("module.attr['key'][0]"),
            depth: 2,
            root: None,
            fetched: HashMap::new(),
            open: HashSet::new(),
            selected: 0,
            reading: None,
            error: None,
        }
    }

    fn read(&mut self, path: String, depth: u32, ctx: &Ctx) {
        let session = ctx.session.clone();
        let asked = path.clone();
        let task = RequestTask::spawn(&ctx.runtime, async move {
            session.inspect_get(&asked, Some(depth)).await
        });
        self.reading = Some((path, task));
        self.error = None;
    }

    fn read_root(&mut self, ctx: &Ctx) {
        if let Some(path) = self.input.value_or_focus() {
            self.read(path, self.depth, ctx);
        }
    }

    fn took(&mut self, path: String, value: InspectedValue) {
        let is_root = self.root.as_ref().is_none_or(|r| r.target == path)
            || self.input.value().trim() == path;
        if is_root {
            self.fetched.clear();
            self.open.clear();
            self.open.insert(value.target.clone());
            open_first_level(&value.value, &value.target, &mut self.open);
            self.selected = 0;
            self.root = Some(value);
        } else {
            if self.fetched.len() >= MAX_FETCHED {
                self.fetched.clear();
            }
            self.open.insert(path.clone());
            self.fetched.insert(path, value.value);
        }
    }

    fn row_count(&self) -> usize {
        self.root.as_ref().map_or(0, |r| {
            rows(&r.value, &r.target, &self.fetched, &self.open).len()
        })
    }

    /// Right/Enter on the selected row: open it, or read it deeper.
    fn expand(&mut self, ctx: &Ctx) {
        let Some(root) = &self.root else {
            return;
        };
        let all = rows(&root.value, &root.target, &self.fetched, &self.open);
        let Some(row) = all.get(self.selected) else {
            return;
        };
        if row.deeper {
            let path = row.path.clone();
            self.read(path, 1, ctx);
        } else if row.branch {
            let path = row.path.clone();
            self.open.insert(path);
        }
    }

    fn collapse(&mut self) {
        let Some(root) = &self.root else {
            return;
        };
        let all = rows(&root.value, &root.target, &self.fetched, &self.open);
        let Some(row) = all.get(self.selected) else {
            return;
        };
        if row.open {
            let path = row.path.clone();
            self.open.remove(&path);
        } else if let Some(parent) = all[..self.selected]
            .iter()
            .rposition(|r| r.depth + 1 == row.depth)
        {
            self.selected = parent;
        }
    }

    fn render_tree(&self, frame: &mut Frame<'_>, area: Rect, root: &InspectedValue) {
        let all = rows(&root.value, &root.target, &self.fetched, &self.open);
        let items: Vec<ListItem<'_>> = all
            .iter()
            .map(|r| {
                let marker = if r.branch {
                    if r.open {
                        "▾ "
                    } else {
                        "▸ "
                    }
                } else if r.deeper {
                    "+ "
                } else {
                    "  "
                };
                let value_style = if r.deeper {
                    theme::dim()
                } else {
                    ratatui::style::Style::default()
                };
                ListItem::new(Line::from(vec![
                    Span::raw(format!("{}{marker}", "  ".repeat(r.depth))),
                    Span::styled(r.label.clone(), theme::name()),
                    Span::raw(": "),
                    Span::styled(summary(r.value), value_style),
                ]))
            })
            .collect();
        let list = List::new(items)
            .highlight_style(theme::selected())
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = ListState::default()
            .with_selected(Some(self.selected.min(all.len().saturating_sub(1))));
        frame.render_stateful_widget(list, area, &mut state);
    }
}

/// Opens the root's direct children that the capture expanded.
fn open_first_level(value: &serde_json::Value, path: &str, open: &mut HashSet<String>) {
    let root = HashMap::new();
    let everything: HashSet<String> = [path.to_owned()].into_iter().collect();
    for row in rows(value, path, &root, &everything).iter().skip(1) {
        if row.branch && row.depth == 1 {
            open.insert(row.path.clone());
        }
    }
}

impl View for InspectView {
    fn title(&self) -> &'static str {
        "inspect"
    }

    fn hints(&self) -> &'static str {
        "e: path  enter: read/expand  ←→: close/open  +/-: depth  r: read again"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [input, status, body, detail] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let status_line = match (&self.reading, &self.root) {
            (Some((path, _)), _) => Line::from(vec![
                Span::raw("reading "),
                Span::styled(path.clone(), theme::name()),
                Span::styled(" …", theme::dim()),
            ]),
            (None, Some(root)) => Line::from(vec![
                Span::styled(root.target.clone(), theme::name()),
                Span::styled(
                    format!(
                        "  {} at {}  (depth {} per read: +/-)",
                        root.type_name, root.id, self.depth
                    ),
                    theme::dim(),
                ),
            ]),
            (None, None) => Line::from(Span::styled(
                "e: type a path (a module in sys.modules, then attributes and ['keys']/[0]), enter: read it",
                theme::dim(),
            )),
        };
        frame.render_widget(Paragraph::new(status_line), status);
        let [error_area, tree] = Layout::vertical([
            Constraint::Length(if self.error.is_some() { 3 } else { 0 }),
            Constraint::Fill(1),
        ])
        .areas(body);
        if let Some(error) = &self.error {
            frame.render_widget(theme::error_paragraph(error.clone()), error_area);
        }
        if let Some(root) = &self.root {
            self.render_tree(frame, tree, root);
            let all = rows(&root.value, &root.target, &self.fetched, &self.open);
            if let Some(row) = all.get(self.selected) {
                let hint = if row.deeper {
                    "  (enter: read it deeper)"
                } else {
                    ""
                };
                frame.render_widget(
                    Paragraph::new(Span::styled(format!("{}{hint}", row.path), theme::dim())),
                    detail,
                );
            }
        }
        self.input.render(frame, input);
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> KeyOutcome {
        if let Some(event) = self.input.on_key_if_focused(key, ctx) {
            if let InputEvent::Submitted(_) = event {
                self.read_root(ctx);
            }
            return event.outcome();
        }
        let last = self.row_count().saturating_sub(1);
        match key.code {
            KeyCode::Char('e') | KeyCode::Char('/') => self.input.focus(),
            KeyCode::Char('r') => self.read_root(ctx),
            KeyCode::Enter if self.root.is_none() => self.read_root(ctx),
            KeyCode::Enter | KeyCode::Right => self.expand(ctx),
            KeyCode::Left => self.collapse(),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(last),
            KeyCode::Home => self.selected = 0,
            KeyCode::Char('+') => self.depth = (self.depth + 1).min(4),
            KeyCode::Char('-') => self.depth = self.depth.saturating_sub(1).max(1),
            _ => return KeyOutcome::Ignored,
        }
        KeyOutcome::Consumed
    }

    fn on_tick(&mut self, _ctx: &Ctx, _visible: bool) {
        self.input.on_tick();
        if let Some((path, answer)) = RequestTask::take_answer_with(&mut self.reading) {
            match answer {
                Ok(value) => self.took(path, value),
                Err(error) => self.error = Some(format!("reading `{path}` failed: {error}")),
            }
        }
    }

    fn is_editing(&self) -> bool {
        self.input.is_focused()
    }

    fn stop(&mut self) {
        self.reading = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn config() -> InspectedValue {
        serde_json::from_value(serde_json::json!({
            "target": "shop.CONFIG", "type": "shop.config.Config", "id": "0x7f3a2c1b9d90",
            "value": {
                "@type": "shop.config.Config", "name": "production", "debug": false,
                "limits": {"cart_items": 50, "per_minute": 600, "regions": "<list len=3>"},
                "db": {"@type": "shop.db.Settings", "host": "db.internal", "port": 5432,
                       "pool": "<shop.db.Pool object at 0x7f3a2c1ba210>"},
                "api_token": "<redacted>"
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_value_as_a_tree_with_a_deeper_read_grafted_in() {
        let mut view = InspectView::new();
        view.input.set_value("shop.CONFIG");
        view.took("shop.CONFIG".into(), config());
        let mut deeper = config();
        deeper.target = "shop.CONFIG.limits['regions']".into();
        deeper.value = serde_json::json!(["eu-west", "us-east", "ap-south"]);
        view.took("shop.CONFIG.limits['regions']".into(), deeper);
        view.selected = 6;
        let screen = draw_to_text(80, 18, |frame, area| view.render(frame, area));
        assert_screen("inspect", &screen);
        view.collapse();
        view.error = Some(
            "reading `shop.CONFIG.total` failed: agent error not_found for `inspect`: cannot read `total` after `shop.CONFIG`: `shop.config.Config.total` is a property; properties are not evaluated".into(),
        );
        for (w, h) in [(1, 1), (10, 3), (40, 12)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
        let screen = draw_to_text(40, 12, |frame, area| view.render(frame, area));
        assert_screen("inspect_small_error", &screen);
    }
}
