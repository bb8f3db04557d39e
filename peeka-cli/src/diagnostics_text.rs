//! The `--format text` rendering of `trace`, `thread` and `top`.

use std::fmt::Write as _;

use peeka_core::client::{
    ThreadEntry, ThreadReport, ThreadState, TopSnapshot, TraceNode, TraceObservation,
};

use crate::text::{clock, Painter};

/// A duration in milliseconds, coloured by size (green fast, yellow 10-100,
/// red above).
fn ms(paint: &Painter, value: f64) -> String {
    let text = format!("{value:.3}ms");
    if value >= 100.0 {
        paint.error(&text)
    } else if value >= 10.0 {
        paint.warn(&text)
    } else {
        paint.good(&text)
    }
}

/// One `trace` observation: a header and the tree.
pub(crate) fn trace(paint: &Painter, o: &TraceObservation) -> String {
    let mut text = format!(
        "{} {} {} {}",
        paint.dim(&clock(o.timestamp)),
        paint.name(&o.func_name),
        ms(paint, o.total_duration_ms),
        paint.dim(&format!("[{}] {} node(s)", o.thread_name, o.node_count)),
    );
    if let Some(thrown) = &o.throw_exp {
        let _ = write!(text, " {}", paint.error(thrown));
    }
    if o.dropped_calls > 0 {
        let _ = write!(
            text,
            " {}",
            paint.warn(&format!(
                "({} calls beyond the node limit)",
                o.dropped_calls
            ))
        );
    }
    node(paint, &o.call_tree, "", true, true, &mut text);
    text
}

fn node(paint: &Painter, n: &TraceNode, prefix: &str, last: bool, root: bool, out: &mut String) {
    let branch = if root || last { "`---" } else { "+---" };
    let place = match (&n.filename, n.lineno) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        _ => "builtin".to_owned(),
    };
    let mut line = format!(
        "\n{prefix}{branch}[{}] {}()",
        ms(paint, n.duration_ms),
        paint.name(&n.function)
    );
    if n.count > 1 {
        let _ = write!(
            line,
            " {} {}",
            paint.bold(&format!("x{}", n.count)),
            paint.dim(&format!("min={:.3}ms max={:.3}ms", n.min_ms, n.max_ms))
        );
    }
    if !n.children.is_empty() {
        let _ = write!(line, " {}", paint.dim(&format!("self={:.3}ms", n.self_ms)));
    }
    let call = match n.call_lineno {
        Some(at) if !root => format!(" #{at}"),
        _ => String::new(),
    };
    let _ = write!(line, " {}", paint.dim(&format!("({place}){call}")));
    out.push_str(&line);
    let inner = if root || last {
        format!("{prefix}    ")
    } else {
        format!("{prefix}|   ")
    };
    for (index, child) in n.children.iter().enumerate() {
        node(
            paint,
            child,
            &inner,
            index + 1 == n.children.len(),
            false,
            out,
        );
    }
}

fn state(paint: &Painter, s: ThreadState) -> String {
    let text = format!("{:<13}", s.as_str());
    match s {
        ThreadState::Runnable => paint.good(&text),
        ThreadState::Waiting | ThreadState::TimedWaiting => paint.dim(&text),
        _ => text,
    }
}

fn entry_line(paint: &Painter, t: &ThreadEntry) -> String {
    let cpu = t
        .cpu_percent
        .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}%"));
    let cpu_time = t
        .cpu_time
        .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}s"));
    let top = t.top_frame.as_ref().map_or_else(String::new, |f| {
        format!("{} ({}:{})", f.function, f.filename, f.lineno)
    });
    let mut name = t.name.clone();
    if t.daemon == Some(true) {
        name.push_str(" (daemon)");
    }
    if t.agent == Some(true) {
        name.push_str(" [agent]");
    }
    format!(
        "{:<16} {:>8} {:<28} {} {:>7} {:>9}  {}",
        t.tid,
        t.native_id
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        name,
        state(paint, t.state),
        cpu,
        cpu_time,
        paint.dim(&top)
    )
}

fn stack_lines(paint: &Painter, t: &ThreadEntry, text: &mut String) {
    for frame in t.stack.iter().flatten() {
        let _ = write!(
            text,
            "\n    at {} ({}:{})",
            paint.bold(&frame.function),
            frame.filename,
            frame.lineno
        );
    }
}

/// The answer of `thread`.
pub(crate) fn thread(paint: &Painter, r: &ThreadReport) -> String {
    let header = paint.bold(&format!(
        "{:<16} {:>8} {:<28} {:<13} {:>7} {:>9}  {}",
        "tid", "native", "name", "state", "cpu%", "cpu time", "innermost frame"
    ));
    let mut text = String::new();
    match r.action.as_str() {
        "detail" => {
            if let Some(t) = &r.thread {
                text.push_str(&header);
                text.push('\n');
                text.push_str(&entry_line(paint, t));
                let _ = write!(text, "\n  {} frame(s):", t.stack_depth);
                stack_lines(paint, t, &mut text);
            }
        }
        action => {
            let entries = r.entries();
            let _ = write!(
                text,
                "{}\n{header}",
                paint.dim(&format!(
                    "{} thread(s){}, CPU over {} ms{}",
                    entries.len(),
                    if action == "busiest" {
                        ", busiest first"
                    } else {
                        ""
                    },
                    r.interval_ms,
                    match r.hidden_agent_threads {
                        Some(n) if n > 0 => format!("; {n} agent thread(s) hidden"),
                        _ => String::new(),
                    }
                ))
            );
            for t in entries {
                text.push('\n');
                text.push_str(&entry_line(paint, t));
                stack_lines(paint, t, &mut text);
            }
        }
    }
    text
}

/// One `top` snapshot: a summary line and the ranked functions (at most
/// `rows`).
pub(crate) fn top(paint: &Painter, s: &TopSnapshot, rows: usize) -> String {
    let mut text = paint.bold(&format!(
        "{} cycle {}: {} samples from {} thread(s) over {:.1}s ({} idle samples left out)",
        clock(s.timestamp),
        s.cycle,
        s.total_samples,
        s.threads,
        s.elapsed,
        s.idle_samples
    ));
    let _ = write!(
        text,
        "\n{}",
        paint.dim(&format!(
            "{:>7} {:>7} {:>9} {:>9}  {}",
            "own%", "total%", "own(s)", "total(s)", "function"
        ))
    );
    for f in s.functions.iter().take(rows) {
        let place = match (&f.filename, f.line) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            _ => String::new(),
        };
        let own = format!("{:>6.2}%", f.own_pct);
        let own = if f.own_pct >= 50.0 {
            paint.error(&own)
        } else if f.own_pct >= 10.0 {
            paint.warn(&own)
        } else {
            own
        };
        let _ = write!(
            text,
            "\n{own} {:>6.2}% {:>9.3} {:>9.3}  {} {}",
            f.total_pct,
            f.own_time,
            f.total_time,
            paint.name(&f.name),
            paint.dim(&place)
        );
    }
    text
}
