//! [`LineEdit`]: a plain one-line text box (a filter, a condition), for
//! text that needs no completion from the target.
//!
//! While focused it takes characters, Backspace, Ctrl-U (clear); Enter
//! submits and Esc cancels, both giving the focus up. The cursor stays at
//! the end: these boxes hold short expressions typed in one go.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::text::{Line, Span};

use super::theme;

/// Longest text accepted, in characters.
const MAX_CHARS: usize = 500;

/// What a key did to the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EditEvent {
    /// Enter: done; the box gave the focus up.
    Submitted,
    /// Esc: the box gave the focus up (the text is kept).
    Cancelled,
    /// The text changed.
    Changed,
    /// Nothing happened.
    Ignored,
}

/// A one-line text box.
#[derive(Debug, Default, Clone)]
pub(crate) struct LineEdit {
    text: String,
    focused: bool,
}

impl LineEdit {
    /// An empty, unfocused box.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Gives the box the focus.
    pub(crate) fn focus(&mut self) {
        self.focused = true;
    }

    /// Whether it has the focus.
    pub(crate) fn is_focused(&self) -> bool {
        self.focused
    }

    /// Handles a key while focused.
    pub(crate) fn on_key(&mut self, key: KeyEvent) -> EditEvent {
        if !self.focused {
            return EditEvent::Ignored;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => {
                self.focused = false;
                EditEvent::Submitted
            }
            KeyCode::Esc => {
                self.focused = false;
                EditEvent::Cancelled
            }
            KeyCode::Backspace => {
                self.text.pop();
                EditEvent::Changed
            }
            KeyCode::Char('u') if ctrl => {
                self.text.clear();
                EditEvent::Changed
            }
            KeyCode::Char(c) if !ctrl && self.text.chars().count() < MAX_CHARS => {
                self.text.push(c);
                EditEvent::Changed
            }
            _ => EditEvent::Ignored,
        }
    }

    /// `label: text▏` (the cursor while focused; `placeholder` dimmed when
    /// empty and unfocused).
    pub(crate) fn line(&self, label: &str, placeholder: &str) -> Line<'static> {
        let label_style = if self.focused {
            theme::key()
        } else {
            theme::dim()
        };
        let mut spans = vec![Span::styled(format!("{label}: "), label_style)];
        if self.text.is_empty() && !self.focused {
            spans.push(Span::styled(placeholder.to_owned(), theme::dim()));
        } else {
            spans.push(Span::raw(self.text.clone()));
        }
        if self.focused {
            spans.push(Span::styled("▏", theme::key()));
        }
        Line::from(spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_then_enter_submits_and_gives_the_focus_up() {
        let mut edit = LineEdit::new();
        assert_eq!(
            edit.on_key(KeyEvent::from(KeyCode::Char('a'))),
            EditEvent::Ignored
        );
        edit.focus();
        for c in "cost > 1x".chars() {
            edit.on_key(KeyEvent::from(KeyCode::Char(c)));
        }
        edit.on_key(KeyEvent::from(KeyCode::Backspace));
        assert_eq!(edit.text(), "cost > 1");
        assert_eq!(
            edit.on_key(KeyEvent::from(KeyCode::Enter)),
            EditEvent::Submitted
        );
        assert!(!edit.is_focused());
        edit.focus();
        edit.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(edit.text(), "");
    }
}
