//! The [`Diagnosis`] of one pid: its findings, the attach methods expected
//! to work, and the questions a caller asks of them.

use super::findings::{Finding, Severity};
use super::route::RouteForecast;
use crate::method::Method;

/// Everything [`doctor`](super::doctor) found about one pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The pid, as this process sees it.
    pub pid: u32,
    /// One finding per check that applied, in a fixed order.
    pub findings: Vec<Finding>,
    /// The methods expected to work when chosen (in `auto`'s order of
    /// preference). A [`Severity::Blocker`] can still stop `auto`: it never
    /// overrides a target's opt-out of remote debugging, for example.
    pub usable_methods: Vec<Method>,
    /// Every other method, with the reason it cannot work.
    pub unusable_methods: Vec<(Method, String)>,
    /// Which route an attach with `auto` would take now, and why (the
    /// `route` finding); `None` when the process could not be examined or
    /// no method can attach.
    pub route: Option<RouteForecast>,
}

impl Diagnosis {
    /// The finding of check `id` (one of [`check`](super::check)'s constants), if it ran.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == id)
    }

    /// The findings that stop an attach.
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> + '_ {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
    }

    /// The most severe finding's severity.
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// Whether an attach is expected to succeed: no blocker, and some method
    /// usable.
    pub fn can_attach(&self) -> bool {
        self.worst() != Severity::Blocker && !self.usable_methods.is_empty()
    }

    /// Why `method` cannot work, or `None` when it is expected to.
    pub fn why_not(&self, method: Method) -> Option<&str> {
        self.unusable_methods
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, why)| why.as_str())
    }
}
