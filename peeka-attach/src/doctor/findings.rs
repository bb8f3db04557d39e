//! What one check found: a [`Finding`], and how much it matters, its
//! [`Severity`].

use std::fmt;

/// How much a finding matters to an attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Nothing in the way.
    Ok,
    /// An attach may still work, or works only with another method.
    Warning,
    /// An attach with the default method choice will fail until it is fixed.
    Blocker,
}

impl Severity {
    /// The label the report uses: `ok`, `warning` or `BLOCKER`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Blocker => "BLOCKER",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check's stable id, one of [`check`](super::check)'s constants.
    pub check: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What was found, in one or two sentences.
    pub summary: String,
    /// What to do about it; `None` when nothing needs doing.
    pub fix: Option<String>,
}
