//! The Python source the target runs: the staging's runner statement
//! under the switch and process check of [`crate::armed_runner`], as a
//! block ([`Body::Block`]), NUL-terminated for `PyRun_SimpleString`.

use crate::armed_runner::{armed_source, Body};
use crate::bootstrap::Staging;
use crate::error::AttachError;
use crate::method::Method;
use crate::target::Target;

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
        let text = armed_source(statement, ns_pid, Body::Block).map_err(|_| {
            AttachError::MethodUnavailable {
                method: Method::Ptrace,
                pid,
                why: format!("the runner code contains a NUL byte and cannot be passed as a C string: {statement:?}"),
            }
        })?;
        let mut bytes = text.into_bytes();
        bytes.push(0);
        Ok(Self { bytes })
    }

    /// The bytes, with the terminating NUL.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::armed_runner::{disarm, SWITCH_OFFSET};
    use crate::memory::RemoteMemory;

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
        disarm(&memory, buffer.as_mut_ptr() as u64).unwrap();
        // SAFETY: the kernel wrote into our own buffer; read it back volatilely.
        let switched =
            unsafe { std::ptr::read_volatile(buffer.as_ptr().add(SWITCH_OFFSET as usize)) };
        assert_eq!(switched, b'0');
    }
}
