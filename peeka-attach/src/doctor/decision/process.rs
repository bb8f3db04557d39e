//! The `process` check: the process exists, is not this one and is not
//! stopped.

use crate::doctor::check;
use crate::doctor::facts::{Facts, LiveFacts};
use crate::doctor::findings::Finding;

impl Facts {
    /// The `process` finding of a live process.
    pub(super) fn process_finding(&self, live: &LiveFacts) -> Finding {
        let status = &live.status;
        let what = describe_process(self.pid, live);
        if self.is_self() {
            return Finding::blocker(
                check::PROCESS,
                format!("{what} is this very process; a process cannot attach to itself"),
                "run Peeka from another process",
            );
        }
        if live.is_stopped() {
            return Finding::blocker(
                check::PROCESS,
                format!("{what} is stopped (job control, e.g. SIGSTOP or Ctrl-Z): attaching would need it to run Python code, so Peeka refuses rather than resume it"),
                format!("resume it with `kill -CONT {}` (or `fg` in its shell), then attach", self.pid),
            );
        }
        let threads = if status.threads == 1 {
            "thread"
        } else {
            "threads"
        };
        Finding::ok(
            check::PROCESS,
            format!(
                "{what} is alive (state {}, {} {threads}, uid {})",
                status.state,
                status.threads,
                status.euid()
            ),
        )
    }
}

fn describe_process(pid: u32, live: &LiveFacts) -> String {
    format!("process {pid} (`{}`)", short_command(&live.command_line))
}

/// A command line for a message, cut to a readable length.
pub(super) fn short_command(command_line: &str) -> String {
    const MAX: usize = 120;
    if command_line.is_empty() {
        return "unknown command".to_owned();
    }
    let mut text = String::new();
    for c in command_line.chars().take(MAX) {
        if c.is_control() {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    if command_line.chars().count() > MAX {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::doctor::facts::ProcessFacts;
    use crate::doctor::fixtures::*;
    use crate::doctor::{check, Severity};
    use crate::method::Method;

    #[test]
    fn a_missing_process_is_the_only_finding() {
        let mut facts = healthy(11);
        facts.process = ProcessFacts::Missing;
        let diagnosis = facts.diagnose();
        assert_eq!(diagnosis.findings.len(), 1);
        assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
        assert!(text(&diagnosis, check::PROCESS).contains("no process with pid 4242"));
        assert!(diagnosis.usable_methods.is_empty());
        assert_eq!(
            diagnosis.why_not(Method::Ptrace),
            Some("there is no such process")
        );
    }

    #[test]
    fn a_zombie_names_its_parent() {
        let mut facts = healthy(11);
        let mut status = proc_status(1000, 0);
        status.state = 'Z';
        status.ppid = 77;
        facts.process = ProcessFacts::Zombie(status);
        let diagnosis = facts.diagnose();
        let found = text(&diagnosis, check::PROCESS);
        assert!(
            found.contains("zombie") && found.contains("process 77"),
            "{found}"
        );
        assert!(!diagnosis.can_attach());
    }

    #[test]
    fn a_stopped_process_must_be_resumed() {
        let mut facts = healthy(11);
        live(&mut facts).status.state = 'T';
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
        assert!(text(&diagnosis, check::PROCESS).contains("kill -CONT 4242"));
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn a_group_stop_seen_on_another_thread_first_is_a_stop() {
        let mut facts = healthy(14);
        live(&mut facts).stopped_threads = 1;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
        let found = text(&diagnosis, check::PROCESS);
        assert!(
            found.contains("refuses") && found.contains("kill -CONT 4242"),
            "{found}"
        );
        assert!(!diagnosis.can_attach());
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn the_doctor_cannot_attach_to_itself() {
        let mut facts = healthy(11);
        facts.own_pid = PID;
        let diagnosis = facts.diagnose();
        assert!(text(&diagnosis, check::PROCESS).contains("cannot attach to itself"));
        assert!(diagnosis.usable_methods.is_empty());
    }
}
