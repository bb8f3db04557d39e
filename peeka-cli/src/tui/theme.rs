//! The TUI's look: its styles, and the formatting every view shares
//! (durations, sizes, times of day, captured values on one line).
//!
//! Colours are a small fixed palette that reads on dark and light
//! terminals; meaning never rests on colour alone (a selected row is also
//! reversed, an error also says "error").

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Text;
use ratatui::widgets::{Paragraph, Wrap};
use serde_json::Value;

/// Headers of tables and panes.
pub(crate) fn header() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// The selected row of a list or table.
pub(crate) fn selected() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

/// Secondary text: hints, units, placeholders.
pub(crate) fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

/// Errors and failures.
pub(crate) fn error() -> Style {
    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
}

/// An error message as a paragraph of its own, wrapped, in the error
/// style.
pub(crate) fn error_paragraph<'a>(text: impl Into<Text<'a>>) -> Paragraph<'a> {
    Paragraph::new(text)
        .style(error())
        .wrap(Wrap { trim: false })
}

/// Warnings and slow things.
pub(crate) fn warn() -> Style {
    Style::default().fg(Color::Yellow)
}

/// Success, healthy figures.
pub(crate) fn good() -> Style {
    Style::default().fg(Color::Green)
}

/// Names of functions, modules and threads.
pub(crate) fn name() -> Style {
    Style::default().fg(Color::Cyan)
}

/// The key letters in hints and the help screen.
pub(crate) fn key() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

/// The tab of the view on screen.
pub(crate) fn active_tab() -> Style {
    Style::default()
        .fg(Color::Black)
        .bg(Color::Cyan)
        .add_modifier(Modifier::BOLD)
}

/// A style for a duration in milliseconds: red from 100 ms, yellow from
/// 10 ms.
pub(crate) fn cost_style(ms: f64) -> Style {
    if ms >= 100.0 {
        error()
    } else if ms >= 10.0 {
        warn()
    } else {
        Style::default()
    }
}

/// A duration in milliseconds, with a precision that suits its size:
/// `0.153ms`, `12.4ms`, `340ms`, `2.50s`.
pub(crate) fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        "-".into()
    } else if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.3}ms")
    }
}

/// A size in bytes with a binary unit: `512 B`, `12.3 KiB`, `45.0 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Unix seconds as `HH:MM:SS.mmm` (UTC), as `peeka-cli` prints them.
pub(crate) fn clock(timestamp: f64) -> String {
    crate::text::clock(timestamp)
}

/// The file's name of a path, without its folders: `cart.py`.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A captured value on one line (strings without quotes), shortened.
pub(crate) fn value_line(value: &Value) -> String {
    crate::text::value(value)
}

/// `text` cut to at most `width` characters, with `…` when cut.
pub(crate) fn fit(text: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    match text.char_indices().nth(width - 1) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

/// A CPU share in percent, or `-` when unknown.
pub(crate) fn percent(value: Option<f64>) -> String {
    match value {
        Some(p) if p.is_finite() => format!("{p:.1}%"),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_a_useful_precision() {
        assert_eq!(duration_ms(0.1534), "0.153ms");
        assert_eq!(duration_ms(12.44), "12.4ms");
        assert_eq!(duration_ms(340.2), "340ms");
        assert_eq!(duration_ms(2500.0), "2.50s");
        assert_eq!(duration_ms(f64::NAN), "-");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(47_185_920), "45.0 MiB");
    }

    #[test]
    fn fit_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(fit("abcdef", 6), "abcdef");
        assert_eq!(fit("abcdefg", 6), "abcde…");
        assert_eq!(fit("ééééé", 3), "éé…");
        assert_eq!(fit("abc", 0), "");
    }
}
