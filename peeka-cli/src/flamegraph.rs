//! Collapsed stacks and the flame graph SVG that `top --flamegraph` writes.
//!
//! [`Collapsed`] accumulates `"outer;...;inner" -> samples`; it writes the
//! collapsed-stack text format (one `stack count` line per stack, sorted)
//! and renders a flame graph: the whole profile is the bottom bar, each
//! frame sits on its caller, a frame's width is its share of the samples,
//! siblings in alphabetical order. The SVG is self-contained (no script):
//! each frame has a `<title>` with its name, samples and share, shown as a
//! tooltip by browsers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Width of the image in pixels.
const WIDTH: f64 = 1200.0;
/// Height of one frame.
const FRAME_HEIGHT: f64 = 16.0;
/// Space for the title above the frames.
const TOP_MARGIN: f64 = 36.0;
/// Space below the frames.
const BOTTOM_MARGIN: f64 = 10.0;
/// Side margins.
const SIDE: f64 = 10.0;
/// Approximate width of one character of the 11 px font.
const CHAR_WIDTH: f64 = 6.6;
/// Frames narrower than this are not drawn.
const MIN_WIDTH: f64 = 0.3;

/// Sampled stacks and how often each was seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Collapsed {
    stacks: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Frame {
    samples: u64,
    children: BTreeMap<String, Frame>,
}

impl Collapsed {
    /// Adds `count` samples of `stack` (`outer;...;inner`).
    pub(crate) fn add(&mut self, stack: &str, count: u64) {
        if stack.is_empty() || count == 0 {
            return;
        }
        *self.stacks.entry(stack.to_owned()).or_default() += count;
    }

    /// Samples in total.
    pub(crate) fn samples(&self) -> u64 {
        self.stacks.values().sum()
    }

    /// The collapsed-stack text: `stack count` per line, sorted by stack.
    pub(crate) fn to_text(&self) -> String {
        let mut text = String::new();
        for (stack, count) in &self.stacks {
            let _ = writeln!(text, "{stack} {count}");
        }
        text
    }

    fn tree(&self) -> Frame {
        let mut root = Frame::default();
        for (stack, &count) in &self.stacks {
            root.samples += count;
            let mut node = &mut root;
            for name in stack.split(';') {
                node = node.children.entry(name.to_owned()).or_default();
                node.samples += count;
            }
        }
        root
    }

    /// The flame graph as an SVG document, titled `title`.
    pub(crate) fn to_svg(&self, title: &str) -> String {
        let root = self.tree();
        let depth = max_depth(&root);
        let height = TOP_MARGIN + FRAME_HEIGHT * (depth + 1) as f64 + BOTTOM_MARGIN;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r##"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="11">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0"/>
<text x="{}" y="22" text-anchor="middle" font-size="16">{}</text>"##,
            WIDTH / 2.0,
            escape(title)
        );
        let total = root.samples.max(1);
        let scale = (WIDTH - 2.0 * SIDE) / total as f64;
        let mut layout = Layout {
            svg: &mut svg,
            scale,
            total,
            bottom: height - BOTTOM_MARGIN,
        };
        layout.frame("all", &root, SIDE, 0);
        svg.push_str("</svg>\n");
        svg
    }

    /// Writes the collapsed stacks to `path`.
    pub(crate) fn write_text(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_text())
    }

    /// Writes the flame graph to `path`.
    pub(crate) fn write_svg(&self, path: &Path, title: &str) -> io::Result<()> {
        std::fs::write(path, self.to_svg(title))
    }
}

fn max_depth(frame: &Frame) -> usize {
    frame
        .children
        .values()
        .map(|child| 1 + max_depth(child))
        .max()
        .unwrap_or(0)
}

struct Layout<'a> {
    svg: &'a mut String,
    scale: f64,
    total: u64,
    bottom: f64,
}

impl Layout<'_> {
    fn frame(&mut self, name: &str, frame: &Frame, x: f64, depth: usize) {
        let width = frame.samples as f64 * self.scale;
        if width < MIN_WIDTH {
            return;
        }
        let y = self.bottom - FRAME_HEIGHT * (depth + 1) as f64;
        let share = frame.samples as f64 * 100.0 / self.total as f64;
        let (r, g, b) = colour(name, depth == 0);
        let tip = format!(
            "{} ({} sample{}, {share:.2}%)",
            name,
            frame.samples,
            if frame.samples == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            self.svg,
            r#"<g><title>{}</title><rect x="{x:.2}" y="{y:.1}" width="{:.2}" height="{:.1}" fill="rgb({r},{g},{b})" rx="2"/>{}</g>"#,
            escape(&tip),
            width,
            FRAME_HEIGHT - 1.0,
            label(name, x, y, width)
        );
        let mut child_x = x;
        for (child_name, child) in &frame.children {
            self.frame(child_name, child, child_x, depth + 1);
            child_x += child.samples as f64 * self.scale;
        }
    }
}

/// The text of a frame, cut to fit its width (none when too narrow).
fn label(name: &str, x: f64, y: f64, width: f64) -> String {
    let fits = ((width - 6.0) / CHAR_WIDTH).floor();
    if fits < 3.0 {
        return String::new();
    }
    let fits = fits as usize;
    let text: String = if name.chars().count() <= fits {
        name.to_owned()
    } else {
        let mut cut: String = name.chars().take(fits.saturating_sub(2)).collect();
        cut.push_str("..");
        cut
    };
    format!(
        r#"<text x="{:.2}" y="{:.1}">{}</text>"#,
        x + 3.0,
        y + FRAME_HEIGHT - 4.5,
        escape(&text)
    )
}

/// A warm colour chosen by the name (stable between runs), grey for the root.
fn colour(name: &str, root: bool) -> (u8, u8, u8) {
    if root {
        return (200, 200, 200);
    }
    // FNV-1a: a fixed, simple hash so a function keeps its colour.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let r = 205 + (hash % 50) as u8;
    let g = 80 + ((hash >> 8) % 150) as u8;
    let b = ((hash >> 16) % 60) as u8;
    (r, g, b)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Collapsed {
        let mut c = Collapsed::default();
        c.add("main;work;burn", 80);
        c.add("main;work;<lambda>", 15);
        c.add("main;idle", 5);
        c.add("main;work;burn", 0);
        c
    }

    #[test]
    fn collapsed_text_is_sorted_and_summed() {
        let mut c = sample();
        c.add("main;idle", 5);
        assert_eq!(
            c.to_text(),
            "main;idle 10\nmain;work;<lambda> 15\nmain;work;burn 80\n"
        );
        assert_eq!(c.samples(), 105);
    }

    #[test]
    fn the_svg_has_one_frame_per_node_with_widths_by_share() {
        let svg = sample().to_svg("top of <pid 1>");
        assert!(svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // all, main, work, burn, <lambda>, idle
        assert_eq!(svg.matches("<g><title>").count(), 6);
        assert!(svg.contains("top of &lt;pid 1&gt;"));
        assert!(svg.contains("burn (80 samples, 80.00%)"));
        assert!(svg.contains("&lt;lambda&gt; (15 samples, 15.00%)"));
        // The root spans the whole width between the margins.
        assert!(svg.contains(r#"<rect x="10.00" y="#));
        assert!(svg.contains(r#"width="1180.00""#));
        // burn is 80% of 1180 px.
        assert!(svg.contains(r#"width="944.00""#));
    }

    #[test]
    fn names_are_escaped_and_labels_fit() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(label("x", 0.0, 0.0, 10.0), "");
        let cut = label("a_very_long_function_name", 0.0, 0.0, 60.0);
        assert!(cut.contains(".."), "{cut}");
    }

    #[test]
    fn an_empty_profile_is_still_a_valid_image() {
        let svg = Collapsed::default().to_svg("nothing");
        assert!(svg.contains("</svg>"));
    }
}
