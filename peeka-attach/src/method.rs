//! Attach methods, and the contract every backend fulfils.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::bootstrap::Staging;
use crate::error::AttachError;
use crate::target::Target;

/// A way to make the target run the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// CPython 3.14+'s remote-exec protocol (PEP 768), done natively.
    Pep768,
    /// ptrace injection of a pending call (3.8-3.13, and any version on request).
    Ptrace,
    /// gdb in batch mode (Linux fallback).
    Gdb,
    /// lldb in batch mode (macOS).
    Lldb,
}

impl Method {
    /// Every method, in `auto`'s order of preference.
    pub const ALL: [Method; 4] = [Method::Pep768, Method::Ptrace, Method::Gdb, Method::Lldb];

    /// The name used on the command line (`--method`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pep768 => "pep768",
            Self::Ptrace => "ptrace",
            Self::Gdb => "gdb",
            Self::Lldb => "lldb",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--method` was not one of the known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attach method {0:?}; use one of auto, pep768, ptrace, gdb, lldb")]
pub struct UnknownMethod(pub String);

/// What the caller asked for: one method, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// pep768 when available and enabled, else ptrace, else gdb (lldb on macOS).
    #[default]
    Auto,
    /// Exactly this method.
    Only(Method),
}

impl FromStr for MethodChoice {
    type Err = UnknownMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            // The Python implementation's spelling, kept as an alias.
            "sys.remote_exec" | "remote_exec" => Ok(Self::Only(Method::Pep768)),
            other => Method::ALL
                .into_iter()
                .find(|m| m.name() == other)
                .map(Self::Only)
                .ok_or_else(|| UnknownMethod(other.to_owned())),
        }
    }
}

/// One timed step of an attach, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What was done, e.g. `pause threads`.
    pub name: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// Collects [`Step`]s.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Timeline {
    /// Runs `f`, recording how long it took under `name`.
    pub fn time<T>(&mut self, name: impl Into<String>, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let value = f();
        self.steps.push(Step {
            name: name.into(),
            elapsed: start.elapsed(),
        });
        value
    }

    /// Appends the steps of another timeline.
    pub fn extend(&mut self, other: Timeline) {
        self.steps.extend(other.steps);
    }

    /// The sum of all steps.
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|s| s.elapsed).sum()
    }
}

/// What a backend is asked to do.
#[derive(Debug)]
pub struct InjectRequest<'a> {
    /// The inspected target.
    pub target: &'a Target,
    /// The prepared private directory: its `script` (for PEP 768) or
    /// `runner_code()` (for methods that call `PyRun_SimpleString`), and
    /// `claimed()`, which turns true once a thread started the bootstrap.
    pub staging: &'a Staging,
    /// When to give up.
    pub deadline: Instant,
}

/// The contract of an attach backend.
///
/// `inject` makes some thread of the target that holds the GIL, at a point
/// where running Python is safe, run the bootstrap, then waits until
/// `staging.claimed()` or the deadline. Before it returns, in every case, it
/// leaves nothing of its own in the target: no pending request that could
/// fire later, no breakpoint, no changed register or byte of memory, no
/// stopped thread. On the deadline it returns [`AttachError::Timeout`]; a
/// backend that `auto` lets give way early returns
/// [`AttachError::NoTaker`] once it has withdrawn every request.
pub trait Injector {
    /// Which method this is.
    fn method(&self) -> Method;

    /// Runs the bootstrap in the target; the returned timeline lists the
    /// backend's own steps.
    ///
    /// # Errors
    /// [`AttachError`] naming the fix; the target is unchanged.
    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError>;
}
