//! The exit codes of `peeka-cli`, stable for scripts.

/// How a `peeka-cli` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: the command did what was asked (a stream ended by `-n`, `-c`,
    /// Ctrl-C, `reset` or `detach` counts as success).
    Success,
    /// 1: the command failed inside the agent (a pattern that matched
    /// nothing, an invalid expression, a stream ended by an error).
    CommandFailed,
    /// 2: the command line is invalid.
    Usage,
    /// 3: no usable target: the process does not exist, no agent and the
    /// attach failed, no remembered target, the connection was lost.
    NoTarget,
    /// 4: the operating system refused access to the process (ptrace
    /// permissions, another user's agent socket).
    PermissionDenied,
    /// 5: client and agent speak incompatible protocol versions.
    Incompatible,
    /// 130: interrupted a second time with Ctrl-C while cleaning up.
    Interrupted,
}

impl ExitCode {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::CommandFailed => 1,
            Self::Usage => 2,
            Self::NoTarget => 3,
            Self::PermissionDenied => 4,
            Self::Incompatible => 5,
            Self::Interrupted => 130,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// The table printed at the end of `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success (a stream ended by -n, -c, Ctrl-C, reset or detach included)
  1    the command failed in the target (no such function, invalid expression, ...)
  2    invalid command line
  3    no usable target (no such process, attach failed, nothing remembered, connection lost)
  4    permission denied (ptrace, or the agent of another user)
  5    client and agent versions are incompatible
  130  a second Ctrl-C while cleaning up";
