//! The `--format text` rendering: compact, aligned, coloured when allowed.

use std::fmt::Write as _;

use peeka_core::client::{Location, MonitorReport, StackObservation, WatchObservation};
use serde_json::Value;

/// Longest rendering of one captured value on a text line.
const MAX_VALUE_CHARS: usize = 400;

/// ANSI colouring that can be switched off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Painter {
    colour: bool,
}

impl Painter {
    /// A painter that colours when `colour` is true.
    pub(crate) fn new(colour: bool) -> Self {
        Self { colour }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Secondary information.
    pub(crate) fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Emphasis.
    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Failures.
    pub(crate) fn error(&self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// Good outcomes.
    pub(crate) fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Things worth a look.
    pub(crate) fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Names of functions.
    pub(crate) fn name(&self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// A captured value on one line, shortened to a readable length.
pub(crate) fn value(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    shorten(&text, MAX_VALUE_CHARS)
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Unix seconds as `HH:MM:SS.mmm` (UTC).
pub(crate) fn clock(timestamp: f64) -> String {
    if !timestamp.is_finite() || timestamp < 0.0 {
        return "--:--:--.---".into();
    }
    let millis = (timestamp * 1000.0).round() as u64;
    let (secs, ms) = (millis / 1000, millis % 1000);
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        day / 3600,
        day / 60 % 60,
        day % 60
    )
}

/// A cost in milliseconds, coloured by size.
fn cost(paint: &Painter, ms: f64) -> String {
    let text = if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.3}ms")
    };
    if ms >= 100.0 {
        paint.error(&text)
    } else if ms >= 10.0 {
        paint.warn(&text)
    } else {
        text
    }
}

/// One `watch` observation.
pub(crate) fn watch(paint: &Painter, o: &WatchObservation) -> String {
    let location = match o.location {
        Location::AtEnter => paint.dim("AtEnter"),
        Location::AtExit => paint.good("AtExit"),
        Location::AtExceptionExit => paint.error("AtExceptionExit"),
        _ => format!("{:?}", o.location),
    };
    let mut line = format!(
        "{} {} {location}",
        paint.dim(&clock(o.timestamp)),
        paint.name(&o.func_name)
    );
    if let Some(ms) = o.cost {
        let _ = write!(line, " cost={}", cost(paint, ms));
    }
    let _ = write!(line, " {}", paint.dim(&format!("[{}]", o.thread_name)));
    let mut field = |label: &str, v: &Value| {
        let _ = write!(line, "\n  {} {}", paint.dim(label), value(v));
    };
    field("params:", &o.params);
    if o.kwargs.as_object().is_some_and(|k| !k.is_empty()) {
        field("kwargs:", &o.kwargs);
    }
    if !o.target.is_null() {
        field("target:", &o.target);
    }
    match o.location {
        Location::AtExit => field("returnObj:", &o.return_obj),
        Location::AtExceptionExit => field("throwExp:", &o.throw_exp),
        _ => {}
    }
    line
}

/// One `stack` observation.
pub(crate) fn stack(paint: &Painter, o: &StackObservation) -> String {
    let mut text = format!(
        "{} {} {} {}",
        paint.dim(&clock(o.timestamp)),
        paint.name(&o.func_name),
        paint.dim(&format!("[{}]", o.thread_name)),
        paint.dim(&format!("params: {}", value(&o.params)))
    );
    for frame in &o.stack {
        let _ = write!(
            text,
            "\n    at {} ({}:{})",
            paint.bold(&frame.function),
            frame.filename,
            frame.lineno
        );
    }
    text
}

/// The header line printed before `monitor` reports.
pub(crate) fn monitor_header(paint: &Painter) -> String {
    paint.bold(&format!(
        "{:<12} {:<40} {:>5} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "time",
        "function",
        "cycle",
        "total",
        "success",
        "fail",
        "fail%",
        "avg ms",
        "min ms",
        "max ms",
        "p50 ms",
        "p95 ms",
        "p99 ms"
    ))
}

/// One `monitor` report.
pub(crate) fn monitor(paint: &Painter, r: &MonitorReport) -> String {
    let fail_rate = format!("{:.2}%", r.fail_rate * 100.0);
    let fail_rate = if r.fail > 0 {
        paint.error(&fail_rate)
    } else {
        fail_rate
    };
    format!(
        "{:<12} {:<40} {:>5} {:>8} {:>8} {:>6} {:>7} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
        clock(r.timestamp),
        shorten(&r.func_name, 40),
        r.cycle,
        r.total,
        r.success,
        r.fail,
        fail_rate,
        r.rt_avg,
        r.rt_min,
        r.rt_max,
        r.rt_p50,
        r.rt_p95,
        r.rt_p99
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_shows_utc_time_of_day() {
        assert_eq!(clock(3_723.25), "01:02:03.250");
        assert_eq!(clock(f64::NAN), "--:--:--.---");
    }

    #[test]
    fn long_values_are_shortened_on_a_char_boundary() {
        let long = Value::from("é".repeat(1000));
        let shown = value(&long);
        assert_eq!(shown.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn no_colour_means_no_escape_codes() {
        let plain = Painter::new(false);
        assert_eq!(plain.error("x"), "x");
        assert!(Painter::new(true).error("x").contains("\x1b["));
    }
}
