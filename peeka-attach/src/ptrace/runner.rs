//! The Python source the target runs: the staging's runner statement,
//! behind a one-byte switch and a process check.
//!
//! The text is `if 1 and __import__('os').getpid()==PID:` followed by the
//! runner statement indented by one space.
//!
//! - Writing `0` over the `1` turns it into a block that compiles and does
//!   nothing. One byte is written atomically, so a thread reading the text
//!   at that moment sees either version, and both are valid Python. That
//!   is how a queued pending call we no longer want is disabled.
//! - The pid check (the target's pid in its own pid namespace) keeps a
//!   forked child from running it: a child forked while the call is queued
//!   inherits the interpreter's pending-call queue, and the forking thread
//!   becomes the child's main thread, which runs it.

use crate::bootstrap::Staging;
use crate::error::AttachError;
use crate::memory::{MemoryError, RemoteMemory};
use crate::method::Method;
use crate::target::Target;

/// Offset of the switch byte (the `1` of `if 1:`).
const SWITCH_OFFSET: u64 = 3;

/// The byte that disables the code.
const DISABLED: u8 = b'0';

/// The runner source, NUL-terminated, ready to be copied into the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunnerCode {
    bytes: Vec<u8>,
}

impl RunnerCode {
    /// Wraps `staging`'s runner statement for `target`.
    ///
    /// # Errors
    /// [`AttachError::MethodUnavailable`] when the statement contains a NUL
    /// byte (it could not be passed as a C string).
    pub(crate) fn new(staging: &Staging, target: &Target) -> Result<Self, AttachError> {
        Self::wrap(&staging.runner_code(), target.pid, target.ns_pid)
    }

    fn wrap(statement: &str, pid: u32, ns_pid: u32) -> Result<Self, AttachError> {
        if statement.contains('\0') {
            return Err(AttachError::MethodUnavailable {
                method: Method::Ptrace,
                pid,
                why: format!("the runner code contains a NUL byte and cannot be passed as a C string: {statement:?}"),
            });
        }
        let mut text = format!("if 1 and __import__('os').getpid()=={ns_pid}:\n");
        for line in statement.lines().filter(|l| !l.trim().is_empty()) {
            text.push(' ');
            text.push_str(line);
            text.push('\n');
        }
        let mut bytes = text.into_bytes();
        bytes.push(0);
        Ok(Self { bytes })
    }

    /// The bytes, with the terminating NUL.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Disables the runner code copied to `address` in the target.
///
/// # Errors
/// The memory error.
pub(crate) fn disable(memory: &RemoteMemory, address: u64) -> Result<(), MemoryError> {
    memory.write(address + SWITCH_OFFSET, &[DISABLED])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_the_statement_behind_a_switch() {
        let code = RunnerCode::wrap("try:exec('x')\nexcept BaseException:pass\n", 1, 42).unwrap();
        assert_eq!(
            code.bytes(),
            b"if 1 and __import__('os').getpid()==42:\n try:exec('x')\n except BaseException:pass\n\0"
        );
        assert_eq!(code.bytes()[SWITCH_OFFSET as usize], b'1');
    }

    #[test]
    fn refuses_nul_bytes() {
        assert!(RunnerCode::wrap("a\0b", 7, 7).is_err());
    }

    #[test]
    fn disabling_flips_one_byte() {
        let mut buffer = RunnerCode::wrap("pass\n", 1, 1).unwrap().bytes().to_vec();
        let memory = RemoteMemory::new(std::process::id());
        disable(&memory, buffer.as_mut_ptr() as u64).unwrap();
        // SAFETY: the kernel wrote into our own buffer; read it back volatilely.
        let switched =
            unsafe { std::ptr::read_volatile(buffer.as_ptr().add(SWITCH_OFFSET as usize)) };
        assert_eq!(switched, b'0');
    }
}
