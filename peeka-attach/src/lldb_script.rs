//! The lldb command script of the `lldb` method (macOS), and the reading of
//! lldb's output.
//!
//! Generating the script is plain text work, so it lives here, compiled and
//! tested on every OS; only the backend that runs lldb
//! (`peeka_attach::lldb`) is macOS-only. The script:
//!
//! 1. attaches (`process attach --pid`);
//! 2. calls `mmap` for a fresh anonymous buffer, kept in the persistent
//!    variable `$peeka_buf` (lldb frees the memory of an expression's own
//!    literals when the expression ends, so the string cannot simply be
//!    passed as a literal: the pending call runs long after);
//! 3. copies the bootstrap statement into it with `memcpy`, and, only when
//!    the buffer is valid, calls `Py_AddPendingCall(PyRun_SimpleString,
//!    $peeka_buf)`, keeping the result in `$peeka_rc`;
//! 4. prints both variables, then detaches: `process detach` is always the
//!    last command, and the script does not stop at a failed command, so the
//!    detach always runs.
//!
//! Every call casts its callee explicitly, so no debug information is
//! needed. The statement is embedded as a C string literal in which every
//! byte other than letters, digits and a few inert punctuation marks is an
//! octal escape: nothing in it can end the command line, close the literal,
//! or be seen by lldb as a backtick substitution or a `$` variable.

use std::fmt::Write as _;
use std::time::Duration;

use thiserror::Error;

/// How an expression names a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    /// A run-time address, written in hex.
    Address(u64),
    /// A symbol lldb resolves in the target (e.g. `mmap` from the system
    /// libraries, which on macOS live in the dyld shared cache rather than
    /// in files Peeka could read).
    Symbol(String),
}

impl Callee {
    fn render(&self) -> String {
        match self {
            Self::Address(address) => format!("{address:#x}"),
            Self::Symbol(name) => name.clone(),
        }
    }
}

/// Everything the script needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LldbPlan {
    /// The target's pid.
    pub pid: u32,
    /// `void *mmap(void *, size_t, int, int, int, off_t)`.
    pub mmap: Callee,
    /// `void *memcpy(void *, const void *, size_t)`.
    pub memcpy: Callee,
    /// `int Py_AddPendingCall(int (*)(void *), void *)`.
    pub add_pending_call: Callee,
    /// `int PyRun_SimpleString(const char *)`.
    pub run_simple_string: Callee,
    /// The Python statement to queue (without a terminating NUL).
    pub statement: String,
    /// Bytes to map (at least `statement.len() + 1`).
    pub buffer_len: u64,
    /// `PROT_READ | PROT_WRITE` of the target's OS.
    pub prot: i32,
    /// `MAP_PRIVATE | MAP_ANON` of the target's OS (`0x1002` on macOS).
    pub map_flags: i32,
    /// How long each injected call may run before lldb abandons it and
    /// restores the thread.
    pub call_timeout: Duration,
}

/// A plan that cannot be turned into a safe script.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The statement holds a NUL byte, which would cut it short.
    #[error("the bootstrap statement contains a NUL byte, which PyRun_SimpleString cannot take")]
    Nul,
    /// The buffer is too small for the statement and its terminator.
    #[error("a buffer of {buffer_len} bytes cannot hold the {needed}-byte bootstrap statement")]
    BufferTooSmall {
        /// The planned size.
        buffer_len: u64,
        /// What is needed.
        needed: u64,
    },
    /// A symbol name that is not a C identifier.
    #[error("{0:?} is not a C identifier")]
    BadSymbol(String),
}

/// Bytes written as themselves in a string literal: none of them is special
/// to C, to lldb's command interpreter or to its expression prefixing.
fn is_inert(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b" _.,:;/()[]{}=+-*<>!#%&|~'^@".contains(&byte)
}

/// A C string literal for `bytes`: inert bytes as themselves, every other
/// byte as a three-digit octal escape (never a hex escape, which would
/// swallow the digits after it).
pub fn c_string_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        if is_inert(byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "\\{byte:03o}");
        }
    }
    out.push('"');
    out
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Options of every injected call: unwind (restore the thread) on any
/// error, ignore breakpoints, let the other threads run if the call blocks
/// (so a lock another thread holds can be released), and give up in time.
fn expression_options(timeout: Duration) -> String {
    format!(
        "--unwind-on-error true --ignore-breakpoints true --all-threads true --timeout {}",
        timeout.as_micros().max(1)
    )
}

/// The lldb command script for `plan`.
///
/// # Errors
/// [`ScriptError`] when the plan cannot be expressed safely.
pub fn render(plan: &LldbPlan) -> Result<String, ScriptError> {
    let bytes = plan.statement.as_bytes();
    if bytes.contains(&0) {
        return Err(ScriptError::Nul);
    }
    let needed = bytes.len() as u64 + 1;
    if plan.buffer_len < needed {
        return Err(ScriptError::BufferTooSmall {
            buffer_len: plan.buffer_len,
            needed,
        });
    }
    for callee in [
        &plan.mmap,
        &plan.memcpy,
        &plan.add_pending_call,
        &plan.run_simple_string,
    ] {
        if let Callee::Symbol(name) = callee {
            if !is_identifier(name) {
                return Err(ScriptError::BadSymbol(name.clone()));
            }
        }
    }
    let options = expression_options(plan.call_timeout);
    let mmap = plan.mmap.render();
    let memcpy = plan.memcpy.render();
    let add_pending_call = plan.add_pending_call.render();
    let run_simple_string = plan.run_simple_string.render();
    let literal = c_string_literal(bytes);
    let (pid, buffer_len, prot, flags) = (plan.pid, plan.buffer_len, plan.prot, plan.map_flags);
    Ok(format!(
        "settings set auto-confirm true
settings set interpreter.stop-command-source-on-error false
settings set symbols.enable-external-lookup false
settings set target.load-script-from-symbol-file false
process attach --pid {pid}
expression {options} -- void *$peeka_buf = ((void *(*)(void *, unsigned long, int, int, int, long long)){mmap})((void *)0, {buffer_len}UL, {prot}, {flags:#x}, -1, 0LL)
expression -- $peeka_buf
expression {options} -- int $peeka_rc = ($peeka_buf == (void *)-1) ? -100 : ((((void *(*)(void *, const void *, unsigned long)){memcpy})($peeka_buf, {literal}, {needed}UL)), (((int (*)(int (*)(void *), void *)){add_pending_call})((int (*)(void *)){run_simple_string}, $peeka_buf)))
expression -- $peeka_rc
process detach
"
    ))
}

/// What lldb's output says about the script's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LldbReport {
    /// `process attach` succeeded.
    pub attached: bool,
    /// The buffer's address (`(void *) -1`, i.e. `u64::MAX`, when mmap failed).
    pub buffer: Option<u64>,
    /// `Py_AddPendingCall`'s result; `-100` means the buffer was invalid
    /// and nothing was called.
    pub pending: Option<i64>,
    /// `process detach` succeeded.
    pub detached: bool,
}

/// The value lldb printed for persistent variable `name` on a result line
/// such as `(int) $peeka_rc = 0` (never the echo of a command, which starts
/// with `(lldb)`).
fn variable_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let line = line.trim();
    if !line.starts_with('(') || line.starts_with("(lldb)") {
        return None;
    }
    let rest = &line[line.find(") ")? + 2..];
    let value = rest.strip_prefix(name)?.strip_prefix(" = ")?;
    Some(value.split_whitespace().next().unwrap_or(value))
}

fn parse_integer(text: &str) -> Option<i64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
        None => text.parse().ok(),
    }
}

/// Reads lldb's standard output.
pub fn parse_report(stdout: &str, pid: u32) -> LldbReport {
    let mut report = LldbReport::default();
    for line in stdout.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with(&format!("Process {pid} stopped")) {
            report.attached = true;
        } else if trimmed.starts_with(&format!("Process {pid} detached")) {
            report.detached = true;
        } else if let Some(value) = variable_value(line, "$peeka_buf") {
            report.buffer = parse_integer(value).map(|v| v as u64);
        } else if let Some(value) = variable_value(line, "$peeka_rc") {
            report.pending = parse_integer(value);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> LldbPlan {
        LldbPlan {
            pid: 4242,
            mmap: Callee::Symbol("mmap".into()),
            memcpy: Callee::Symbol("memcpy".into()),
            add_pending_call: Callee::Address(0x1_0030_0a10),
            run_simple_string: Callee::Address(0x1_0031_2f00),
            statement: "print('hi')\n".into(),
            buffer_len: 16384,
            prot: 3,
            map_flags: 0x1002,
            call_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn renders_every_command_in_order_with_detach_last() {
        let script = render(&plan()).unwrap();
        let options =
            "--unwind-on-error true --ignore-breakpoints true --all-threads true --timeout 2000000";
        let expected = [
            "settings set auto-confirm true".to_owned(),
            "settings set interpreter.stop-command-source-on-error false".to_owned(),
            "settings set symbols.enable-external-lookup false".to_owned(),
            "settings set target.load-script-from-symbol-file false".to_owned(),
            "process attach --pid 4242".to_owned(),
            format!("expression {options} -- void *$peeka_buf = ((void *(*)(void *, unsigned long, int, int, int, long long))mmap)((void *)0, 16384UL, 3, 0x1002, -1, 0LL)"),
            "expression -- $peeka_buf".to_owned(),
            format!("expression {options} -- int $peeka_rc = ($peeka_buf == (void *)-1) ? -100 : ((((void *(*)(void *, const void *, unsigned long))memcpy)($peeka_buf, \"print('hi')\\012\", 13UL)), (((int (*)(int (*)(void *), void *))0x100300a10)((int (*)(void *))0x100312f00, $peeka_buf)))"),
            "expression -- $peeka_rc".to_owned(),
            "process detach".to_owned(),
        ];
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines, expected);
        assert!(script.ends_with("process detach\n"));
    }

    #[test]
    fn addresses_are_hex_and_symbols_verbatim() {
        let mut plan = plan();
        plan.mmap = Callee::Address(0x7fff_2040_1000);
        plan.memcpy = Callee::Address(0xdead_beef);
        let script = render(&plan).unwrap();
        assert!(script.contains("int, int, int, long long))0x7fff20401000)("));
        assert!(script.contains("unsigned long))0xdeadbeef)($peeka_buf"));
        assert!(!script.contains("mmap"));
    }

    #[test]
    fn escapes_everything_that_lldb_or_c_could_interpret() {
        assert_eq!(c_string_literal(b"ab 12_/.()"), "\"ab 12_/.()\"");
        assert_eq!(c_string_literal(b"\"\\"), "\"\\042\\134\"");
        assert_eq!(c_string_literal(b"\n\r\t\0"), "\"\\012\\015\\011\\000\"");
        // Trigraphs, backtick substitution, persistent variables.
        assert_eq!(c_string_literal(b"??=`$x"), "\"\\077\\077=\\140\\044x\"");
        // Octal escapes are always three digits: "\1" followed by "23" stays apart.
        assert_eq!(c_string_literal(b"\x0123"), "\"\\00123\"");
        // UTF-8, byte by byte.
        assert_eq!(c_string_literal("é".as_bytes()), "\"\\303\\251\"");
        // A whole bootstrap statement stays on one line with no quote or backslash left bare.
        let statement = "try:exec(compile(open('/tmp/peeka-1/bootstrap-a\\'b.py','rb').read(),'x','exec'),{'__name__':'__peeka_bootstrap__'})\nexcept BaseException:pass\n";
        let literal = c_string_literal(statement.as_bytes());
        let inner = &literal[1..literal.len() - 1];
        assert!(
            !inner.contains('"')
                && !inner.contains('\n')
                && !inner.contains('`')
                && !inner.contains('$')
        );
        assert!(inner
            .split('\\')
            .skip(1)
            .all(|part| part.len() >= 3 && part[..3].bytes().all(|b| (b'0'..=b'7').contains(&b))));
    }

    #[test]
    fn refuses_unsafe_plans() {
        let mut nul = plan();
        nul.statement = "a\0b".into();
        assert_eq!(render(&nul), Err(ScriptError::Nul));
        let mut small = plan();
        small.buffer_len = 12;
        assert_eq!(
            render(&small),
            Err(ScriptError::BufferTooSmall {
                buffer_len: 12,
                needed: 13
            })
        );
        let mut symbol = plan();
        symbol.memcpy = Callee::Symbol("memcpy)(0);exit(".into());
        assert!(matches!(render(&symbol), Err(ScriptError::BadSymbol(_))));
    }

    #[test]
    fn reads_lldb_output() {
        let stdout = "(lldb) process attach --pid 4242\nProcess 4242 stopped\n* thread #1, queue = 'com.apple.main-thread', stop reason = signal SIGSTOP\n(lldb) expression -- void *$peeka_buf = ((void *(*)(void *))mmap)(0)\n(lldb) expression -- $peeka_buf\n(void *) $peeka_buf = 0x0000000104a3c000\n(lldb) expression -- int $peeka_rc = 0\n(lldb) expression -- $peeka_rc\n(int) $peeka_rc = 0\n(lldb) process detach\nProcess 4242 detached\n";
        assert_eq!(
            parse_report(stdout, 4242),
            LldbReport {
                attached: true,
                buffer: Some(0x1_04a3_c000),
                pending: Some(0),
                detached: true,
            }
        );
        let failed = parse_report(
            "(void *) $peeka_buf = 0xffffffffffffffff\n(int) $peeka_rc = -100\n",
            1,
        );
        assert_eq!(failed.buffer, Some(u64::MAX));
        assert_eq!(failed.pending, Some(-100));
        assert!(!failed.attached && !failed.detached);
        assert_eq!(
            parse_report("(lldb) expression -- int $peeka_rc = 5\n", 1).pending,
            None
        );
    }
}
