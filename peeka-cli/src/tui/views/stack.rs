//! View 4, stack: who calls a function. Type a pattern (`e`), Enter starts
//! a `stack` stream; every call seen adds its callers to the list (latest
//! first, the last few hundred kept), and the selected one is shown in
//! full below. `s` stops (the agent removes the probe).

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent};
use peeka_core::client::{StackObservation, StackRequest};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, HighlightSpacing, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use super::stream_state::{StreamSlot, StreamState};
use crate::tui::pattern_input::{InputEvent, PatternInput};
use crate::tui::theme;
use crate::tui::view::{Ctx, KeyOutcome, View};

/// Stacks kept.
const HISTORY: usize = 300;

/// The stack view.
#[derive(Debug)]
pub(crate) struct StackView {
    input: PatternInput,
    stream: StreamSlot<StackObservation>,
    /// The stacks seen, newest first.
    stacks: VecDeque<StackObservation>,
    selected: usize,
    received: u64,
}

impl Default for StackView {
    fn default() -> Self {
        Self::new()
    }
}

impl StackView {
    /// A stack view with nothing started.
    pub(crate) fn new() -> Self {
        Self {
            input: PatternInput::new("module.function or module.Class.method"),
            stream: StreamSlot::new(),
            stacks: VecDeque::new(),
            selected: 0,
            received: 0,
        }
    }

    fn start(&mut self, ctx: &Ctx) {
        let Some(pattern) = self.input.value_or_focus() else {
            return;
        };
        let request = StackRequest::new(pattern.clone());
        self.stream.open(ctx, pattern, move |session| async move {
            session.stack(&request).await
        });
        self.stacks.clear();
        self.selected = 0;
        self.received = 0;
    }

    fn add(&mut self, observation: StackObservation) {
        self.received += 1;
        self.stacks.push_front(observation);
        if self.stacks.len() > HISTORY {
            self.stacks.pop_back();
        }
        // Keep the same stack selected while new ones arrive above.
        if self.selected > 0 {
            self.selected = (self.selected + 1).min(self.stacks.len() - 1);
        }
    }

    fn render_list(&self, frame: &mut Frame<'_>, area: Rect) {
        let items: Vec<ListItem<'_>> = self
            .stacks
            .iter()
            .map(|o| {
                let caller = o.stack.first().map_or_else(
                    || "(no caller)".to_owned(),
                    |f| {
                        format!(
                            "{} ({}:{})",
                            f.function,
                            theme::file_name(&f.filename),
                            f.lineno
                        )
                    },
                );
                ListItem::new(Line::from(vec![
                    Span::styled(theme::clock(o.timestamp), theme::dim()),
                    Span::raw(" "),
                    Span::styled(o.func_name.clone(), theme::name()),
                    Span::styled(format!(" [{}] ", o.thread_name), theme::dim()),
                    Span::raw(format!("← {caller}")),
                ]))
            })
            .collect();
        let title = format!(
            " {} calls seen, latest first{} ",
            self.received,
            if self.stream.dropped > 0 {
                format!(", {} not shown (too fast)", self.stream.dropped)
            } else {
                String::new()
            }
        );
        let list = List::new(items)
            .block(Block::bordered().title(title).border_style(theme::dim()))
            .highlight_style(theme::selected())
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = ListState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(list, area, &mut state);
    }

    fn render_selected(&self, frame: &mut Frame<'_>, area: Rect) {
        let Some(o) = self.stacks.get(self.selected) else {
            return;
        };
        let mut lines = vec![Line::from(vec![
            Span::styled(o.func_name.clone(), theme::name()),
            Span::raw(format!("({})", params(&o.params))),
        ])];
        for frame_ in &o.stack {
            lines.push(Line::from(vec![
                Span::raw("  at "),
                Span::styled(frame_.function.clone(), theme::header()),
                Span::styled(
                    format!(" ({}:{})", frame_.filename, frame_.lineno),
                    theme::dim(),
                ),
            ]));
        }
        let block = Block::bordered()
            .title(format!(
                " thread {} ({}) at {} ",
                o.thread_name,
                o.thread_id,
                theme::clock(o.timestamp)
            ))
            .border_style(theme::dim());
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}

fn params(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .map(theme::value_line)
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => theme::value_line(other),
    }
}

impl View for StackView {
    fn title(&self) -> &'static str {
        "stack"
    }

    fn hints(&self) -> &'static str {
        "e: pattern  enter: start  ↑↓: select  s: stop"
    }

    fn render(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [input, status, list, selected] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Percentage(40),
            Constraint::Fill(1),
        ])
        .areas(area);
        let hint = "e: type a pattern, enter: show who calls it";
        frame.render_widget(
            Paragraph::new(self.stream.state.line("following", hint)),
            status,
        );
        if let StreamState::Failed(error) = &self.stream.state {
            frame.render_widget(theme::error_paragraph(error.clone()), list.union(selected));
        } else if self.stacks.is_empty() {
            if let Some(waiting) = self.stream.waiting(|| "waiting for a call…".into()) {
                frame.render_widget(waiting, list);
            }
        } else {
            self.render_list(frame, list);
            self.render_selected(frame, selected);
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
        let last = self.stacks.len().saturating_sub(1);
        match key.code {
            KeyCode::Char('e') | KeyCode::Char('/') => self.input.focus(),
            KeyCode::Enter | KeyCode::Char('r') => self.start(ctx),
            KeyCode::Char('s') => self.stream.stop(),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(last),
            KeyCode::Home => self.selected = 0,
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

    fn observation(n: u64, caller: &str) -> StackObservation {
        serde_json::from_value(serde_json::json!({
            "func_name": "shop.cart.Cart.total", "thread_id": 140_241 + n % 2,
            "thread_name": if n % 2 == 0 { "MainThread" } else { "worker-1" },
            "timestamp": 1795000000.0 + n as f64 * 0.25, "params": ["<Cart 3 items>", 0.1],
            "stack": [
                {"filename": "/srv/shop/checkout.py", "lineno": 44, "function": caller},
                {"filename": "/srv/shop/app.py", "lineno": 120, "function": "handle"},
                {"filename": "/srv/shop/app.py", "lineno": 12, "function": "<module>"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn stacks_latest_first_with_the_selected_one_in_full() {
        let mut view = StackView::new();
        view.input.set_value("shop.cart.Cart.total");
        view.stream.state = StreamState::Running {
            pattern: "shop.cart.Cart.total".into(),
            matched: vec!["shop.cart.Cart.total".into()],
            backend: Some("code_swap".into()),
        };
        for n in 0..4 {
            view.add(observation(
                n,
                if n % 2 == 0 { "checkout" } else { "preview" },
            ));
        }
        view.selected = 1;
        let screen = draw_to_text(90, 18, |frame, area| view.render(frame, area));
        assert_screen("stack", &screen);
        for n in 0..400 {
            view.add(observation(n, "checkout"));
        }
        assert_eq!(view.stacks.len(), HISTORY);
        for (w, h) in [(1, 1), (10, 3), (40, 12)] {
            draw_to_text(w, h, |frame, area| view.render(frame, area));
        }
    }
}
