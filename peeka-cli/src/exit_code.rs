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
    /// 3: no usable target: the process does not exist or is stopped by
    /// job control, no agent and the attach failed, no remembered target,
    /// the connection was lost.
    NoTarget,
    /// 4: the operating system refused access to the process (ptrace
    /// permissions, another user's agent socket).
    PermissionDenied,
    /// 5: client and agent speak incompatible protocol versions.
    Incompatible,
    /// 129: SIGHUP (the terminal closed) ended the command: at once, or
    /// once the attach in progress was finished safely.
    HungUp,
    /// 130: Ctrl-C (SIGINT) ended the command: a second one while a stream
    /// was being ended, or one during an attach, once the attach was
    /// finished safely.
    Interrupted,
    /// 143: SIGTERM ended the command, as SIGINT does for 130.
    Terminated,
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
            Self::HungUp => 129,
            Self::Interrupted => 130,
            Self::Terminated => 143,
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
  3    no usable target (no such process, stopped by SIGSTOP/Ctrl-Z, attach failed, nothing remembered, connection lost)
  4    permission denied (ptrace, or the agent of another user)
  5    client and agent versions are incompatible
  129  SIGHUP (the terminal closed)
  130  Ctrl-C: a second one while a stream ends, or one during an attach
  143  SIGTERM, as Ctrl-C
  A signal during an attach waits until the attach is finished safely.";
