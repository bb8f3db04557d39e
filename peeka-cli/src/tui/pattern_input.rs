//! [`PatternInput`]: the one-line box where a pattern (`shop.cart.Cart.total`)
//! is typed, with completion from the target.
//!
//! While it has the focus it takes the editing keys: characters, Backspace,
//! Delete, Left/Right, Home/End (Ctrl-A/Ctrl-E), Ctrl-U (clear), Ctrl-W
//! (delete the last name); Tab accepts the selected completion, Up/Down
//! move in the completion popup, Enter submits, Esc cancels. Completions
//! come from the target (see [`completion`]): modules and classes (`sc`),
//! methods (`sm`) and module functions (the module's namespace), asked for
//! in the background as the user types and never waited for.
//!
//! Drawn as a bordered box (three rows) when the area allows, else as one
//! line; the popup is drawn below the box (above when there is no room
//! below), clamped to the frame.

mod completion;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, HighlightSpacing, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use self::completion::{matching, Cache, Candidate, Completer, Query};
use super::view::{Ctx, KeyOutcome};

/// Rows the box takes when drawn with its border.
pub(crate) const HEIGHT: u16 = 3;

/// Most completions shown at once in the popup.
const POPUP_ROWS: u16 = 8;

/// Longest pattern accepted, in characters.
const MAX_CHARS: usize = 1000;

/// What a key did to the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputEvent {
    /// Enter: the text (trimmed, not empty) is submitted; the box lost the
    /// focus.
    Submitted(String),
    /// Esc: the box lost the focus; the text is kept.
    Cancelled,
    /// The key edited the text or moved in the popup.
    Consumed,
    /// The box has no use for the key (or does not have the focus).
    Ignored,
}

impl InputEvent {
    /// Whether the view used the key: it did unless the box ignored it.
    pub(crate) fn outcome(&self) -> KeyOutcome {
        match self {
            Self::Ignored => KeyOutcome::Ignored,
            Self::Submitted(_) | Self::Cancelled | Self::Consumed => KeyOutcome::Consumed,
        }
    }
}

/// A text box for patterns with completion from the target.
#[derive(Debug)]
pub(crate) struct PatternInput {
    placeholder: &'static str,
    value: String,
    /// In characters.
    cursor: usize,
    focused: bool,
    /// The selected completion.
    selected: usize,
    cache: Cache,
    /// The last failure to complete, shown in the popup.
    error: Option<String>,
    completer: Option<Completer>,
}

impl PatternInput {
    /// An empty box showing `placeholder` (dimmed) while empty.
    pub(crate) fn new(placeholder: &'static str) -> Self {
        Self {
            placeholder,
            value: String::new(),
            cursor: 0,
            focused: false,
            selected: 0,
            cache: Cache::default(),
            error: None,
            completer: None,
        }
    }

    /// Gives the box the focus (the cursor goes to the end).
    pub(crate) fn focus(&mut self) {
        self.focused = true;
        self.cursor = self.value.chars().count();
    }

    /// Whether the box has the focus (then it wants every key).
    pub(crate) fn is_focused(&self) -> bool {
        self.focused
    }

    /// The text.
    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    /// Replaces the text (the cursor goes to the end).
    pub(crate) fn set_value(&mut self, value: impl Into<String>) {
        self.value = value.into().chars().take(MAX_CHARS).collect();
        self.cursor = self.value.chars().count();
        self.selected = 0;
    }

    /// The text to act on (start a stream, read a path), trimmed; when
    /// there is none, the box takes the focus instead and this is `None`.
    pub(crate) fn value_or_focus(&mut self) -> Option<String> {
        let text = self.value.trim();
        if text.is_empty() {
            self.focus();
            return None;
        }
        Some(text.to_owned())
    }

    /// Handles `key` when the box has the focus (see
    /// [`on_key`](Self::on_key)); `None` when it has not: the key is the
    /// view's.
    pub(crate) fn on_key_if_focused(&mut self, key: KeyEvent, ctx: &Ctx) -> Option<InputEvent> {
        self.is_focused().then(|| self.on_key(key, ctx))
    }

    /// Handles `key` while focused; asks the target for completions of
    /// the new text when it changed.
    pub(crate) fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> InputEvent {
        let (event, changed) = self.edit(key);
        if changed {
            self.request_completions(ctx);
        }
        event
    }

    /// Takes the completion answers that arrived (call it every tick).
    pub(crate) fn on_tick(&mut self) {
        let Some(completer) = &self.completer else {
            return;
        };
        let current = Query::for_text(&self.value);
        // A few answers at most are ever in flight; stop after a handful.
        for _ in 0..8 {
            let Some((query, answer)) = completer.try_answer() else {
                break;
            };
            if current.as_ref() != Some(&query) {
                // Stale: the text moved on while the target answered.
                continue;
            }
            match answer {
                Ok(answer) => {
                    self.error = None;
                    self.cache.insert(query, answer);
                }
                Err(error) => self.error = Some(error),
            }
        }
    }

    /// The edit `key` makes, and whether the text changed.
    fn edit(&mut self, key: KeyEvent) -> (InputEvent, bool) {
        if !self.focused || key.kind == KeyEventKind::Release {
            return (InputEvent::Ignored, false);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.value.chars().count();
        match key.code {
            KeyCode::Enter => {
                let text = self.value.trim().to_owned();
                if text.is_empty() {
                    return (InputEvent::Consumed, false);
                }
                self.focused = false;
                (InputEvent::Submitted(text), false)
            }
            KeyCode::Esc => {
                self.focused = false;
                (InputEvent::Cancelled, false)
            }
            KeyCode::Tab => {
                let chosen = self.matches().get(self.selected).map(|c| c.text.clone());
                match chosen {
                    Some(text) => {
                        self.set_value(text);
                        (InputEvent::Consumed, true)
                    }
                    None => (InputEvent::Consumed, false),
                }
            }
            KeyCode::Down | KeyCode::Up => {
                let count = self.matches().len();
                if count == 0 {
                    return (InputEvent::Ignored, false);
                }
                self.selected = if key.code == KeyCode::Down {
                    (self.selected + 1) % count
                } else {
                    (self.selected + count - 1) % count
                };
                (InputEvent::Consumed, false)
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                (InputEvent::Consumed, false)
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                (InputEvent::Consumed, false)
            }
            KeyCode::Home => {
                self.cursor = 0;
                (InputEvent::Consumed, false)
            }
            KeyCode::End => {
                self.cursor = len;
                (InputEvent::Consumed, false)
            }
            KeyCode::Char('a') if ctrl => {
                self.cursor = 0;
                (InputEvent::Consumed, false)
            }
            KeyCode::Char('e') if ctrl => {
                self.cursor = len;
                (InputEvent::Consumed, false)
            }
            KeyCode::Char('u') if ctrl => {
                self.set_value(String::new());
                (InputEvent::Consumed, true)
            }
            KeyCode::Char('w') if ctrl => {
                self.delete_name();
                (InputEvent::Consumed, true)
            }
            KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => {
                (InputEvent::Ignored, false)
            }
            KeyCode::Char(c) => {
                if len >= MAX_CHARS {
                    return (InputEvent::Consumed, false);
                }
                let at = self.byte_at(self.cursor);
                self.value.insert(at, c);
                self.cursor += 1;
                self.edited();
                (InputEvent::Consumed, true)
            }
            KeyCode::Backspace => {
                if self.cursor == 0 {
                    return (InputEvent::Consumed, false);
                }
                self.cursor -= 1;
                let at = self.byte_at(self.cursor);
                self.value.remove(at);
                self.edited();
                (InputEvent::Consumed, true)
            }
            KeyCode::Delete => {
                if self.cursor >= len {
                    return (InputEvent::Consumed, false);
                }
                let at = self.byte_at(self.cursor);
                self.value.remove(at);
                self.edited();
                (InputEvent::Consumed, true)
            }
            _ => (InputEvent::Ignored, false),
        }
    }

    fn edited(&mut self) {
        self.selected = 0;
    }

    /// Ctrl-W: deletes back to the previous dot (and that dot, when the
    /// cursor is right after it).
    fn delete_name(&mut self) {
        let before: Vec<char> = self.value.chars().take(self.cursor).collect();
        let mut start = before.len();
        if start > 0 && before[start - 1] == '.' {
            start -= 1;
        }
        while start > 0 && before[start - 1] != '.' {
            start -= 1;
        }
        let from = self.byte_at(start);
        let to = self.byte_at(self.cursor);
        self.value.replace_range(from..to, "");
        self.cursor = start;
        self.edited();
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map_or(self.value.len(), |(at, _)| at)
    }

    fn request_completions(&mut self, ctx: &Ctx) {
        let Some(query) = Query::for_text(&self.value) else {
            return;
        };
        if self.cache.lookup(&query).is_some() {
            return;
        }
        let completer = self
            .completer
            .get_or_insert_with(|| Completer::start(ctx.session.clone(), &ctx.runtime));
        completer.ask(query);
    }

    /// The completions of the current text known so far.
    fn matches(&self) -> Vec<&Candidate> {
        Query::for_text(&self.value)
            .and_then(|query| self.cache.lookup(&query))
            .map(|answer| matching(answer, &self.value))
            .unwrap_or_default()
    }

    /// Draws the box into `area`, and while focused the completion popup
    /// (clamped to the frame).
    pub(crate) fn render(&self, frame: &mut Frame<'_>, area: Rect) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        let border = if self.focused {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new().fg(Color::DarkGray)
        };
        let inner = if area.height >= HEIGHT {
            let box_area = Rect {
                height: HEIGHT,
                ..area
            };
            let mut block = Block::bordered().border_style(border);
            if self.focused && area.width >= 44 {
                block = block.title_bottom(
                    Line::from(" tab: complete  enter: ok  esc: cancel ")
                        .right_aligned()
                        .style(Style::new().fg(Color::DarkGray)),
                );
            }
            let inner = block.inner(box_area);
            frame.render_widget(block, box_area);
            inner
        } else {
            Rect { height: 1, ..area }
        };
        if inner.width == 0 {
            return;
        }
        let width = usize::from(inner.width);
        // Scroll so that the cursor stays visible.
        let skip = (self.cursor + 1).saturating_sub(width);
        let line = if self.value.is_empty() {
            Line::from(Span::styled(
                self.placeholder,
                Style::new().fg(Color::DarkGray),
            ))
        } else {
            Line::from(
                self.value
                    .chars()
                    .skip(skip)
                    .take(width)
                    .collect::<String>(),
            )
        };
        frame.render_widget(Paragraph::new(line), inner);
        if self.focused {
            let x = inner.x + u16::try_from(self.cursor - skip).unwrap_or(0);
            frame.set_cursor_position(Position::new(x.min(inner.right() - 1), inner.y));
            self.render_popup(frame, area, inner.x);
        }
    }

    fn render_popup(&self, frame: &mut Frame<'_>, input: Rect, x: u16) {
        let matches = self.matches();
        let lines: Vec<ListItem<'_>> = if matches.is_empty() {
            match (&self.error, Query::for_text(&self.value)) {
                (Some(error), Some(_)) => vec![ListItem::new(Line::from(Span::styled(
                    format!("no completion: {error}"),
                    Style::new().fg(Color::Red),
                )))],
                _ => return,
            }
        } else {
            let name_width = matches
                .iter()
                .map(|c| c.text.chars().count())
                .max()
                .unwrap_or(0);
            matches
                .iter()
                .map(|c| {
                    ListItem::new(Line::from(vec![
                        Span::raw(format!("{:<name_width$} ", c.text)),
                        Span::styled(c.kind.label(), Style::new().fg(Color::DarkGray)),
                    ]))
                })
                .collect()
        };
        let screen = frame.area();
        let wanted_width = lines.iter().map(ListItem::width).max().unwrap_or(0) + 4;
        let width = u16::try_from(wanted_width)
            .unwrap_or(u16::MAX)
            .min(screen.width);
        let rows = u16::try_from(lines.len())
            .unwrap_or(u16::MAX)
            .min(POPUP_ROWS);
        let below = screen.bottom().saturating_sub(input.bottom());
        let above = input.y.saturating_sub(screen.y);
        let (y, height) = if below >= 3 || below >= above {
            (input.bottom(), (rows + 2).min(below))
        } else {
            let height = (rows + 2).min(above);
            (input.y - height, height)
        };
        if height < 3 || width < 3 {
            return;
        }
        let x = x
            .saturating_sub(1)
            .min(screen.right().saturating_sub(width))
            .max(screen.x);
        let popup = Rect {
            x,
            y,
            width,
            height,
        };
        let list = List::new(lines)
            .block(Block::bordered().border_style(Style::new().fg(Color::DarkGray)))
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ")
            .highlight_spacing(HighlightSpacing::Always);
        let mut state = ListState::default();
        if !matches.is_empty() {
            state.select(Some(self.selected.min(matches.len() - 1)));
        }
        frame.render_widget(Clear, popup);
        frame.render_stateful_widget(list, popup, &mut state);
    }
}

#[cfg(test)]
mod tests {
    use super::completion::{answer_for_tests, Kind};
    use super::*;
    use crate::tui::testing::{assert_screen, draw_to_text};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(input: &mut PatternInput, text: &str) {
        for c in text.chars() {
            input.edit(key(KeyCode::Char(c)));
        }
    }

    fn with_shop_members(input: &mut PatternInput) {
        let candidate = |text: &str, kind| Candidate {
            text: text.into(),
            kind,
        };
        input.cache.insert(
            Query::Members("shop".into()),
            answer_for_tests(vec![
                candidate("shop.cart", Kind::Module),
                candidate("shop.checkout", Kind::Function),
                candidate("shop.Config", Kind::Class),
                candidate("shop.catalog", Kind::Module),
                candidate("shop._private", Kind::Function),
                candidate("shop.restock", Kind::Function),
            ]),
        );
    }

    #[test]
    fn editing_keys() {
        let mut input = PatternInput::new("pattern");
        assert_eq!(input.edit(key(KeyCode::Char('x'))).0, InputEvent::Ignored);
        input.focus();
        typed(&mut input, "shop.cart.Cart");
        input.edit(key(KeyCode::Left));
        input.edit(key(KeyCode::Backspace));
        assert_eq!(input.value(), "shop.cart.Cat");
        input.edit(key(KeyCode::End));
        input.edit(KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(input.value(), "shop.cart.");
        input.edit(KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(input.value(), "shop.");
        input.edit(key(KeyCode::Home));
        input.edit(key(KeyCode::Delete));
        assert_eq!(input.value(), "hop.");
        input.edit(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(input.value(), "");
        assert_eq!(input.edit(key(KeyCode::Enter)).0, InputEvent::Consumed);
        typed(&mut input, " shop.f ");
        assert_eq!(
            input.edit(key(KeyCode::Enter)).0,
            InputEvent::Submitted("shop.f".into())
        );
        assert!(!input.is_focused());
        input.focus();
        assert_eq!(input.edit(key(KeyCode::Esc)).0, InputEvent::Cancelled);
        assert!(!input.is_focused());
        assert_eq!(input.value(), " shop.f ");
    }

    #[test]
    fn tab_accepts_the_selected_completion() {
        let mut input = PatternInput::new("pattern");
        input.focus();
        with_shop_members(&mut input);
        typed(&mut input, "shop.c");
        let shown: Vec<_> = input.matches().iter().map(|c| c.text.clone()).collect();
        assert_eq!(shown, ["shop.cart", "shop.catalog", "shop.checkout"]);
        input.edit(key(KeyCode::Down));
        input.edit(key(KeyCode::Down));
        input.edit(key(KeyCode::Down));
        input.edit(key(KeyCode::Up));
        assert_eq!(input.edit(key(KeyCode::Tab)), (InputEvent::Consumed, true));
        assert_eq!(input.value(), "shop.checkout");
        assert!(input.matches().is_empty());
    }

    #[test]
    fn the_popup_lists_completions_below_the_box() {
        let mut input = PatternInput::new("module.Class.method");
        input.focus();
        with_shop_members(&mut input);
        typed(&mut input, "shop.");
        input.edit(key(KeyCode::Down));
        let screen = draw_to_text(60, 12, |frame, area| {
            input.render(frame, Rect { height: 3, ..area });
        });
        assert_screen("pattern_input_popup", &screen);
    }

    #[test]
    fn unfocused_with_a_placeholder_and_tiny_sizes() {
        let mut input = PatternInput::new("module.Class.method");
        let screen = draw_to_text(30, 3, |frame, area| input.render(frame, area));
        assert_screen("pattern_input_placeholder", &screen);
        input.focus();
        with_shop_members(&mut input);
        typed(&mut input, "shop.a_very_long_name_that_scrolls.c");
        for (w, h) in [(1, 1), (3, 1), (10, 2), (12, 4), (40, 12)] {
            draw_to_text(w, h, |frame, area| input.render(frame, area));
        }
        input.set_value("shop.");
        // The popup goes above a box at the bottom of the screen.
        let screen = draw_to_text(30, 8, |frame, area| {
            input.render(
                frame,
                Rect {
                    y: 5,
                    height: 3,
                    ..area
                },
            );
        });
        assert_screen("pattern_input_popup_above", &screen);
    }
}
