//! The `--format text` rendering of `sc`, `sm`, `inspect`, `logger` and
//! `memory`.

use std::fmt::Write as _;

use peeka_core::client::{
    AllocationDiff, AllocationStat, AllocationTop, ClassSearch, GcReport, InspectedValue,
    InstanceCount, Instances, LevelChange, LoggerDetail, LoggerList, MemoryOverview, MethodSearch,
    ReferenceNode, ReferenceTree, ScanSummary, TracingState,
};
use serde_json::Value;

use crate::text::{value, Painter};

/// A byte count for people: `512 B`, `1.5 KiB`, `-3.2 MiB`.
pub(crate) fn bytes(n: i64) -> String {
    let size = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    if size < 1024.0 {
        return format!("{n} B");
    }
    let (scaled, unit) = if size < 1024.0 * 1024.0 {
        (size / 1024.0, "KiB")
    } else if size < 1024.0 * 1024.0 * 1024.0 {
        (size / (1024.0 * 1024.0), "MiB")
    } else {
        (size / (1024.0 * 1024.0 * 1024.0), "GiB")
    };
    format!("{sign}{scaled:.1} {unit}")
}

fn optional_bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "?".into(), |n| bytes(n as i64))
}

fn scan_note(p: &Painter, scan: &ScanSummary) -> String {
    let mut note = format!(
        "looked at {} of {} tracked objects in {:.0} ms",
        scan.scanned, scan.tracked, scan.scan_ms
    );
    if scan.scan_truncated {
        let why = scan.scan_stopped_by.as_deref().unwrap_or("a bound");
        let _ = write!(note, "; stopped early ({why}): counts are partial");
        return p.warn(&note);
    }
    p.dim(&note)
}

/// `sc`.
pub(crate) fn sc(p: &Painter, pattern: &str, found: &ClassSearch) -> String {
    let mut text = format!(
        "{} class(es) match `{pattern}`{}",
        found.total,
        if found.truncated {
            format!(" (first {} shown)", found.classes.len())
        } else {
            String::new()
        }
    );
    for class in &found.classes {
        let _ = write!(text, "\n  {}", p.name(&class.name));
        if let Some(file) = &class.file {
            let _ = write!(text, "\n    {} {file}", p.dim("file:"));
        }
        if let Some(bases) = &class.bases {
            let _ = write!(text, "\n    {} {}", p.dim("bases:"), bases.join(", "));
        }
        if let Some(mro) = &class.mro {
            let _ = write!(text, "\n    {} {}", p.dim("mro:"), mro.join(" > "));
        }
        if let Some(methods) = &class.methods {
            let _ = write!(text, "\n    {} {}", p.dim("methods:"), methods.join(", "));
        }
    }
    if found.scan_truncated {
        let _ = write!(
            text,
            "\n{}",
            p.warn("the walk over the classes stopped at its bound: the list may be incomplete")
        );
    }
    text
}

/// `sm`.
pub(crate) fn sm(p: &Painter, found: &MethodSearch) -> String {
    let mut text = format!(
        "{} method(s) in {} class(es){}",
        found.total,
        found.classes,
        if found.truncated {
            format!(" (first {} shown)", found.methods.len())
        } else {
            String::new()
        }
    );
    for method in &found.methods {
        let _ = write!(
            text,
            "\n  {}.{} {}",
            method.class_name,
            p.name(&method.name),
            p.dim(&method.kind)
        );
        if let Some(signature) = &method.signature {
            let _ = write!(text, "{signature}");
        }
        if let (Some(file), Some(line)) = (&method.file, method.line) {
            let _ = write!(text, " {}", p.dim(&format!("{file}:{line}")));
        }
        if let Some(kind) = method.function_kind.as_deref().filter(|k| *k != "function") {
            let _ = write!(text, " {}", p.warn(kind));
        }
    }
    text
}

fn pretty(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// `inspect --action get`.
pub(crate) fn inspected(p: &Painter, v: &InspectedValue) -> String {
    format!(
        "{} {}\n{}",
        p.name(&v.target),
        p.dim(&format!("({} at {})", v.type_name, v.id)),
        pretty(&v.value)
    )
}

fn filter_note(p: &Painter, errors: u64, last: Option<&str>) -> String {
    if errors == 0 {
        return String::new();
    }
    format!(
        "\n{}",
        p.warn(&format!(
            "the filter failed on {errors} object(s) (counted as not matching): {}",
            last.unwrap_or("?")
        ))
    )
}

/// `inspect --action instances`.
pub(crate) fn instances(p: &Painter, found: &Instances) -> String {
    let mut text = format!(
        "{} instance(s) of {}{}",
        found.matched,
        p.name(&found.class_name),
        if found.truncated {
            format!(" (first {} shown)", found.instances.len())
        } else {
            String::new()
        }
    );
    for instance in &found.instances {
        let _ = write!(
            text,
            "\n  {} {} {}",
            p.dim(&instance.id),
            p.bold(&instance.type_name),
            value(&instance.value)
        );
    }
    text.push_str(&filter_note(
        p,
        found.filter_errors,
        found.last_filter_error.as_deref(),
    ));
    let _ = write!(text, "\n{}", scan_note(p, &found.scan));
    text
}

/// `inspect --action count`.
pub(crate) fn count(p: &Painter, found: &InstanceCount) -> String {
    let mut text = format!("{}: {} instance(s)", p.name(&found.class_name), found.count);
    let mut types: Vec<(&String, &Value)> = found.by_type.iter().collect();
    types.sort_by_key(|entry| std::cmp::Reverse(entry.1.as_u64()));
    for (name, n) in types {
        let _ = write!(text, "\n  {:>8} {name}", n);
    }
    text.push_str(&filter_note(
        p,
        found.filter_errors,
        found.last_filter_error.as_deref(),
    ));
    let _ = write!(text, "\n{}", scan_note(p, &found.scan));
    text
}

/// `logger --action list`.
pub(crate) fn loggers(p: &Painter, list: &LoggerList) -> String {
    if !list.logging_imported {
        return "the target has not imported `logging`: it has no loggers".into();
    }
    let mut text = p.bold(&format!(
        "{:<48} {:<10} {:<10} {:>8} {:>9}",
        "logger", "level", "effective", "handlers", "propagate"
    ));
    for logger in &list.loggers {
        let _ = write!(
            text,
            "\n{:<48} {:<10} {:<10} {:>8} {:>9}",
            logger.name,
            if logger.level == 0 {
                "-".to_owned()
            } else {
                logger.level_name.clone()
            },
            logger.effective_level_name,
            logger.handlers,
            if logger.propagate { "yes" } else { "no" }
        );
        if logger.disabled {
            text.push_str(&p.warn(" (disabled)"));
        }
    }
    if list.truncated {
        let _ = write!(
            text,
            "\n{}",
            p.warn(&format!(
                "{} loggers, {} shown; narrow with --pattern",
                list.total,
                list.loggers.len()
            ))
        );
    }
    if list.disable > 0 {
        let _ = write!(
            text,
            "\n{}",
            p.warn(&format!("logging.disable({}) is in effect", list.disable))
        );
    }
    text
}

/// `logger --action get`.
pub(crate) fn logger(p: &Painter, l: &LoggerDetail) -> String {
    let mut text = format!(
        "{} level {} (effective {}), propagate {}{}",
        p.name(&l.name),
        if l.level == 0 {
            "NOTSET".to_owned()
        } else {
            l.level_name.clone()
        },
        l.effective_level_name,
        if l.propagate { "yes" } else { "no" },
        if l.disabled { ", disabled" } else { "" }
    );
    if l.handlers.is_empty() {
        let _ = write!(text, "\n  {}", p.dim("no handlers"));
    }
    for h in &l.handlers {
        let _ = write!(
            text,
            "\n  {} {}",
            p.bold(&h.type_name),
            p.dim(&format!("level {}", h.level_name.as_deref().unwrap_or("?")))
        );
        if let Some(stream) = &h.stream {
            let _ = write!(text, " stream {stream}");
        }
        if let Some(file) = &h.filename {
            let _ = write!(text, " file {file}");
        }
        if let Some(format) = &h.format {
            let _ = write!(text, " {}", p.dim(&format!("format {format:?}")));
        }
    }
    text
}

/// `logger --action set`.
pub(crate) fn level_change(p: &Painter, c: &LevelChange) -> String {
    format!(
        "{} {}: {} -> {} (effective {}); it stays after detach",
        p.good("set"),
        p.name(&c.name),
        c.previous_level_name,
        p.bold(&c.level_name),
        c.effective_level_name
    )
}

/// `memory --action overview`.
pub(crate) fn overview(p: &Painter, o: &MemoryOverview) -> String {
    let mut text = format!(
        "{} {}   {} {}   {} {}",
        p.dim("rss"),
        optional_bytes(o.rss_bytes),
        p.dim("peak"),
        optional_bytes(o.peak_rss_bytes),
        p.dim("virtual"),
        optional_bytes(o.vms_bytes)
    );
    let gc = &o.gc;
    let _ = write!(
        text,
        "\n{} counts {} thresholds {} collections {} garbage {}{}",
        p.dim("gc"),
        gc["counts"],
        gc["thresholds"],
        gc["collections"],
        gc["garbage"],
        if gc["enabled"] == Value::Bool(false) {
            p.warn(" (disabled)")
        } else {
            String::new()
        }
    );
    let tm = &o.tracemalloc;
    if tm["tracing"] == Value::Bool(true) {
        let _ = write!(
            text,
            "\n{} tracing (started by {}), {} traced, peak {}",
            p.dim("tracemalloc"),
            tm["started_by"].as_str().unwrap_or("?"),
            bytes(tm["traced_bytes"].as_i64().unwrap_or(0)),
            bytes(tm["peak_bytes"].as_i64().unwrap_or(0))
        );
    } else {
        let _ = write!(text, "\n{} off", p.dim("tracemalloc"));
    }
    let _ = write!(
        text,
        "\n{}",
        p.bold(&format!("{:>12} {:>10}  {}", "size", "count", "type"))
    );
    for row in &o.types {
        let _ = write!(
            text,
            "\n{:>12} {:>10}  {}",
            bytes(row.size as i64),
            row.count,
            row.type_name
        );
    }
    let _ = write!(text, "\n{}", scan_note(p, &o.scan));
    text
}

/// `memory --action start|stop`.
pub(crate) fn tracing(p: &Painter, s: &TracingState) -> String {
    match (s.tracing, s.already) {
        (true, true) => format!(
            "tracemalloc was already tracing (started by {}, {} frames)",
            s.started_by.as_deref().unwrap_or("?"),
            s.nframe.unwrap_or(0)
        ),
        (true, false) => format!(
            "{} tracemalloc ({} frames per allocation); it slows allocations until `memory --action stop` or detach",
            p.good("started"),
            s.nframe.unwrap_or(0)
        ),
        _ => format!("{} tracemalloc", p.good("stopped")),
    }
}

fn location(s: &AllocationStat) -> String {
    match s.lineno {
        Some(line) => format!("{}:{line}", s.filename),
        None => s.filename.clone(),
    }
}

fn traceback(p: &Painter, s: &AllocationStat) -> String {
    let mut text = String::new();
    for frame in s.traceback.iter().flatten().skip(1) {
        let _ = write!(
            text,
            "\n{:>36}{}",
            "",
            p.dim(&format!(
                "from {}:{}",
                frame["filename"].as_str().unwrap_or("?"),
                frame["lineno"]
            ))
        );
    }
    text
}

/// `memory --action top`.
pub(crate) fn allocations(p: &Painter, t: &AllocationTop) -> String {
    let mut text = format!(
        "{} live in {} blocks (traced, the agent's own left out)\n{}",
        bytes(t.total_size),
        t.total_count,
        p.bold(&format!(
            "{:>12} {:>10} {:>12}  {}",
            "size", "count", "average", "where"
        ))
    );
    for s in &t.stats {
        let _ = write!(
            text,
            "\n{:>12} {:>10} {:>12}  {}{}",
            bytes(s.size),
            s.count,
            bytes(s.average.unwrap_or(0)),
            location(s),
            traceback(p, s)
        );
    }
    text
}

/// `memory --action diff`.
pub(crate) fn diff(p: &Painter, d: &AllocationDiff) -> String {
    let mut text = format!(
        "{} since snapshot {} ({:.1} s ago); {} live now\n{}",
        signed_bytes(p, d.total_size_diff),
        d.snapshot,
        d.elapsed,
        bytes(d.total_size),
        p.bold(&format!(
            "{:>12} {:>10} {:>12} {:>10}  {}",
            "size diff", "count diff", "size", "count", "where"
        ))
    );
    for s in &d.stats {
        let _ = write!(
            text,
            "\n{:>12} {:>10} {:>12} {:>10}  {}{}",
            signed_bytes(p, s.size_diff.unwrap_or(0)),
            format!("{:+}", s.count_diff.unwrap_or(0)),
            bytes(s.size),
            s.count,
            location(s),
            traceback(p, s)
        );
    }
    text
}

fn signed_bytes(p: &Painter, n: i64) -> String {
    let text = if n > 0 {
        format!("+{}", bytes(n))
    } else {
        bytes(n)
    };
    if n > 0 {
        p.error(&text)
    } else {
        p.good(&text)
    }
}

/// `memory --action gc`.
pub(crate) fn gc(p: &Painter, r: &GcReport) -> String {
    format!(
        "{} {} objects in {:.1} ms; {} uncollectable (gc.garbage holds {}); counts {:?} -> {:?}",
        p.good("collected"),
        r.collected,
        r.elapsed_ms,
        r.uncollectable,
        r.garbage,
        r.counts_before,
        r.counts_after
    )
}

fn tree(p: &Painter, node: &ReferenceNode, depth: usize, text: &mut String) {
    let indent = "  ".repeat(depth + 1);
    let via = node
        .via
        .as_deref()
        .map(|v| format!("{} ", p.warn(&format!("[{v}]"))))
        .unwrap_or_default();
    let _ = write!(
        text,
        "\n{indent}{via}{} {} {}",
        p.bold(&node.type_name),
        node.summary,
        p.dim(&node.id)
    );
    for child in &node.children {
        tree(p, child, depth + 1, text);
    }
}

/// `memory --action referrers|referents`.
pub(crate) fn references(p: &Painter, t: &ReferenceTree) -> String {
    let arrow = if t.direction == "referrers" {
        "held by"
    } else {
        "holds"
    };
    let mut text = format!(
        "{} instance(s) of {}; {} shown with what each is {arrow}",
        t.instances,
        p.name(&t.type_name),
        t.roots.len()
    );
    for root in &t.roots {
        tree(p, root, 0, &mut text);
    }
    let _ = write!(text, "\n{}", scan_note(p, &t.scan));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_readable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(-3 * 1024 * 1024), "-3.0 MiB");
    }
}
