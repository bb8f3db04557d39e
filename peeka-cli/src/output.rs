//! Where every line `peeka-cli` prints goes through: JSON Lines on stdout,
//! or text (with colour when stdout is a terminal and `NO_COLOR` is unset).
//!
//! JSONL lines (`docs/cli.md` has the full schema), one object each:
//! - `{"type":"status","level":"info","message":...}` progress;
//! - `{"type":"success","command":...,"data":{...}}` a command's outcome;
//! - `{"type":"error","command":...,"error":...,"code":...,"exit_code":n}`;
//! - `{"type":"event","command":...,"event":...,"data":{...}}` stream events
//!   (`started`, `condition_errors`, `stream_end`, ...);
//! - `{"type":"observation","command":...,"seq":n,"data":{...}}` stream items,
//!   `data` with the field names of the Python implementation;
//! - `{"type":"result","command":...,"data":{...}}` query results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use serde_json::{json, Map, Value};

use crate::args::Format;
use crate::text::Painter;

/// The printer of one `peeka-cli` run (a small value: copies print alike).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    format: Format,
    pub(crate) paint: Painter,
}

impl Output {
    /// An output in `format`; colour is decided from the environment.
    pub(crate) fn new(format: Format) -> Self {
        let colour = format == Format::Text
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal();
        Self {
            format,
            paint: Painter::new(colour),
        }
    }

    /// Whether lines are JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.format == Format::Jsonl
    }

    fn json_line(value: &Value) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = serde_json::to_writer(&mut out, value);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }

    /// A line of text on stdout.
    pub(crate) fn text_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Progress of a slow step.
    pub(crate) fn status(&self, message: &str, extra: Map<String, Value>) {
        if self.is_json() {
            let mut line = json!({"type": "status", "level": "info", "message": message});
            if let Value::Object(fields) = &mut line {
                fields.extend(extra);
            }
            Self::json_line(&line);
        } else {
            eprintln!("{}", self.paint.dim(&format!("· {message}")));
        }
    }

    /// A command's outcome; `text` renders it for people.
    pub(crate) fn success(
        &self,
        command: &str,
        data: Value,
        text: impl FnOnce(&Painter) -> String,
    ) {
        if self.is_json() {
            Self::json_line(&json!({"type": "success", "command": command, "data": data}));
        } else {
            self.text_line(&text(&self.paint));
        }
    }

    /// A query's result; `text` renders it for people.
    pub(crate) fn result(&self, command: &str, data: Value, text: impl FnOnce(&Painter) -> String) {
        if self.is_json() {
            Self::json_line(&json!({"type": "result", "command": command, "data": data}));
        } else {
            self.text_line(&text(&self.paint));
        }
    }

    /// A stream event.
    pub(crate) fn event(
        &self,
        command: &str,
        event: &str,
        data: Value,
        text: impl FnOnce(&Painter) -> String,
    ) {
        if self.is_json() {
            Self::json_line(
                &json!({"type": "event", "command": command, "event": event, "data": data}),
            );
        } else {
            eprintln!("{}", text(&self.paint));
        }
    }

    /// A stream item.
    pub(crate) fn observation(
        &self,
        command: &str,
        seq: u64,
        data: Value,
        text: impl FnOnce(&Painter) -> String,
    ) {
        if self.is_json() {
            Self::json_line(
                &json!({"type": "observation", "command": command, "seq": seq, "data": data}),
            );
        } else {
            self.text_line(&text(&self.paint));
        }
    }

    /// A failure, with the exit code it leads to.
    pub(crate) fn error(&self, command: &str, message: &str, code: Option<&str>, exit_code: u8) {
        if self.is_json() {
            let mut line = json!({"type": "error", "command": command, "error": message, "exit_code": exit_code});
            if let (Some(code), Value::Object(fields)) = (code, &mut line) {
                fields.insert("code".into(), Value::from(code));
            }
            Self::json_line(&line);
        } else {
            eprintln!("{} {message}", self.paint.error("error:"));
        }
    }
}
