//! Render tests: draw a view on ratatui's `TestBackend` and compare the
//! screen with an expected screen kept as a text file next to the views
//! (`src/tui/screens/<name>.txt`). `PEEKA_BLESS=1 cargo test` rewrites the
//! expected screens from what is drawn; review the diff before committing.

use std::path::PathBuf;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::{Frame, Terminal};

/// Draws with `draw` on a `width` x `height` test terminal and returns the
/// screen as lines of text (trailing spaces kept, so widths are checked).
pub(crate) fn draw_to_text(
    width: u16,
    height: u16,
    draw: impl FnOnce(&mut Frame<'_>, Rect),
) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal
        .draw(|frame| {
            let area = frame.area();
            draw(frame, area);
        })
        .expect("draw on the test backend");
    buffer_to_text(terminal.backend().buffer())
}

/// The symbols of `buffer`, one line per row.
pub(crate) fn buffer_to_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut text = String::new();
    for y in area.top()..area.bottom() {
        let mut skip = 0usize;
        for x in area.left()..area.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            skip = unicode_width(symbol).saturating_sub(1);
            text.push_str(symbol);
        }
        text.push('\n');
    }
    text
}

fn unicode_width(symbol: &str) -> usize {
    // Wide characters take two cells; the cell after one holds "".
    symbol
        .chars()
        .map(|c| {
            if (c as u32) >= 0x1100 && is_wide(c) {
                2
            } else {
                1
            }
        })
        .sum::<usize>()
        .max(1)
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF)
}

/// Compares `actual` with the expected screen `name`
/// (`src/tui/screens/<name>.txt`), or rewrites it under `PEEKA_BLESS=1`.
pub(crate) fn assert_screen(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/tui/screens")
        .join(format!("{name}.txt"));
    if std::env::var_os("PEEKA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("screens dir")).expect("create screens dir");
        std::fs::write(&path, actual).expect("write expected screen");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("expected screen {} is missing ({e}); run with PEEKA_BLESS=1 to create it, then review it", path.display())
    });
    if expected != actual {
        panic!(
            "screen {name} differs from {}\n--- expected\n{expected}--- actual\n{actual}(PEEKA_BLESS=1 rewrites it after review)",
            path.display()
        );
    }
}
