//! The Python source a debugger-based backend makes the target run: the
//! staging's runner statement behind a one-byte switch and a process check.
//!
//! The text starts with `if 1 and __import__('os').getpid()==PID:`.
//!
//! - Writing `0` over the `1` ([`disarm`]) turns it into a statement that
//!   compiles and does nothing. One byte is written atomically, so a thread
//!   reading the text at that moment sees either version, and both are
//!   valid Python. That is how a queued pending call that is no longer
//!   wanted is disarmed.
//! - The pid check (the target's pid in its own pid namespace) keeps a
//!   forked child from running it: a child forked while the call is queued
//!   inherits the interpreter's pending-call queue, and the forking thread
//!   becomes the child's main thread, which runs it.
//!
//! The ptrace backend puts the statement itself under the `if`
//! ([`Body::Block`]); the gdb backend passes it to `exec` as a string
//! literal on the same line ([`Body::Exec`]).

use crate::bootstrap::python_string;
use crate::memory::{MemoryError, RemoteMemory};

/// Offset of the switch byte (the `1` of `if 1 and ...`).
pub(crate) const SWITCH_OFFSET: u64 = 3;

/// The byte that disarms the code.
const DISARMED: u8 = b'0';

/// How the runner statement follows the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// Its non-blank lines, each indented by one space, under the `if`.
    Block,
    /// `exec('<statement>')` on the `if`'s line.
    Exec,
}

/// The runner statement contains a NUL byte, so it cannot be passed to
/// `PyRun_SimpleString` as a C string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContainsNul;

/// `statement` behind the switch and the check that the process is
/// `ns_pid` (its pid in its own pid namespace), ending with a newline
/// (without a terminating NUL).
///
/// # Errors
/// [`ContainsNul`] when `statement` contains a NUL byte.
pub(crate) fn armed_source(
    statement: &str,
    ns_pid: u32,
    body: Body,
) -> Result<String, ContainsNul> {
    if statement.contains('\0') {
        return Err(ContainsNul);
    }
    let guard = format!("if 1 and __import__('os').getpid()=={ns_pid}:");
    Ok(match body {
        Body::Exec => format!("{guard}exec({})\n", python_string(statement)),
        Body::Block => {
            let mut text = guard;
            text.push('\n');
            for line in statement.lines().filter(|l| !l.trim().is_empty()) {
                text.push(' ');
                text.push_str(line);
                text.push('\n');
            }
            text
        }
    })
}

/// Disarms the armed source copied to `address` in the target.
///
/// # Errors
/// The memory error.
pub(crate) fn disarm(memory: &RemoteMemory, address: u64) -> Result<(), MemoryError> {
    memory.write(address + SWITCH_OFFSET, &[DISARMED])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bodies_have_their_switch_where_it_is_flipped() {
        for body in [Body::Block, Body::Exec] {
            let text = armed_source("pass\n", 42, body).unwrap();
            assert_eq!(text.as_bytes()[SWITCH_OFFSET as usize], b'1', "{body:?}");
            assert!(
                text.starts_with("if 1 and __import__('os').getpid()==42:"),
                "{body:?}"
            );
        }
    }

    #[test]
    fn refuses_nul_bytes() {
        assert_eq!(armed_source("a\0b", 7, Body::Block), Err(ContainsNul));
        assert_eq!(armed_source("a\0b", 7, Body::Exec), Err(ContainsNul));
    }
}
