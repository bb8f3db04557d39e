//! Which attach methods can work, and why each other one cannot.

use crate::doctor::check;
use crate::doctor::facts::{DebuggerCheck, Facts, ProcessFacts, StagingFacts};
use crate::method::Method;
use crate::target::{Arch, InspectError, RemoteDebug};

impl Facts {
    /// Whether each method can work, in `auto`'s order.
    pub(super) fn method_verdicts(&self) -> Vec<(Method, Result<(), String>)> {
        let common = self.common_obstacle();
        Method::ALL
            .into_iter()
            .map(|method| {
                let verdict = match &common {
                    Some(why) => Err(why.clone()),
                    None => self.method_obstacle(method).map_or(Ok(()), Err),
                };
                (method, verdict)
            })
            .collect()
    }

    /// A reason that rules out every method.
    fn common_obstacle(&self) -> Option<String> {
        let live = match &self.process {
            ProcessFacts::Missing => return Some("there is no such process".into()),
            ProcessFacts::Unreadable(why) => {
                return Some(format!("the process cannot be examined: {why}"))
            }
            ProcessFacts::Zombie(_) => return Some("the process is a zombie".into()),
            ProcessFacts::Alive(live) => live,
        };
        if self.is_self() {
            return Some("a process cannot attach to itself".into());
        }
        if live.is_stopped() {
            return Some(format!(
                "the process is stopped; resume it with `kill -CONT {}`",
                self.pid
            ));
        }
        if let Err(error) = &live.inspected {
            return Some(match error {
                InspectError::PermissionDenied { .. } => {
                    format!("ptrace access is denied (see {})", check::PTRACE_PERMISSION)
                }
                InspectError::NotCPython { .. } => {
                    format!("it is not CPython (see {})", check::CPYTHON)
                }
                InspectError::UnsupportedVersion { version, .. } => {
                    format!("Python {version} is not supported (see {})", check::VERSION)
                }
                InspectError::NoSuchProcess { .. } | InspectError::Zombie { .. } => {
                    "the process exited".into()
                }
                other => format!("it could not be inspected: {other}"),
            });
        }
        if let Err(why) = &live.access.verdict {
            return Some(format!("ptrace access is denied: {why}"));
        }
        match &live.staging {
            Some(StagingFacts::Untrusted { .. } | StagingFacts::TmpUnusable { .. }) => {
                Some(format!(
                    "the agent's private directory cannot be prepared (see {})",
                    check::STAGING
                ))
            }
            _ => None,
        }
    }

    /// Why `method` cannot work, given no common obstacle.
    fn method_obstacle(&self, method: Method) -> Option<String> {
        let ProcessFacts::Alive(live) = &self.process else {
            return Some("there is no live process".into());
        };
        let Ok(python) = &live.inspected else {
            return Some("the process is not an attachable CPython".into());
        };
        let strict_seccomp = live.status.seccomp == 1;
        let missing_symbols = (!python.missing_symbols.is_empty()).then(|| {
            format!(
                "the interpreter does not export {}",
                python.missing_symbols.join(" and ")
            )
        });
        let arch_mismatch = (python.arch != self.host_arch).then(|| {
            format!(
                "the interpreter is built for {} and this Peeka for {}",
                python.arch, self.host_arch
            )
        });
        match method {
            Method::Pep768 => {
                if python.version.minor < 14 {
                    return Some(format!(
                        "Python {} has no remote-exec support (it arrived in 3.14)",
                        python.version
                    ));
                }
                match &python.remote_debug {
                    RemoteDebug::Enabled => arch_mismatch,
                    RemoteDebug::Disabled => Some(format!(
                        "remote debugging is disabled in the target: {}",
                        live.opt_out_evidence()
                    )),
                    RemoteDebug::Unknown(why) => {
                        Some(format!("its remote-debug state could not be read: {why}"))
                    }
                    RemoteDebug::Unsupported => {
                        Some("the interpreter has no remote-exec support".into())
                    }
                }
            }
            Method::Ptrace => {
                if !self.on_linux {
                    Some("ptrace injection is implemented for Linux only".into())
                } else if python.arch != Arch::X86_64 || self.host_arch != Arch::X86_64 {
                    Some(format!(
                        "ptrace injection supports x86_64 only; the interpreter is built for {}",
                        python.arch
                    ))
                } else if strict_seccomp {
                    Some("the target runs in seccomp strict mode, which forbids the mmap call the injection needs".into())
                } else {
                    missing_symbols
                }
            }
            Method::Gdb | Method::Lldb => {
                let (name, path) = &self.debugger;
                if method.name() != *name {
                    Some(format!(
                        "the {method} method is for {}; here use {name}",
                        if method == Method::Lldb {
                            "macOS"
                        } else {
                            "Linux"
                        }
                    ))
                } else if path.is_none() {
                    Some(format!("{name} is not installed (not found in PATH)"))
                } else if let DebuggerCheck::Unusable { headline, .. } = &self.debugger_check {
                    Some(headline.clone())
                } else if let DebuggerCheck::Inconclusive(why) = &self.debugger_check {
                    Some(format!(
                        "Peeka could not check in time that {name} can make inferior calls here ({why}), and never runs an unchecked {name} against a target"
                    ))
                } else if strict_seccomp {
                    Some(format!(
                        "the target runs in seccomp strict mode, which forbids the calls {name} makes in it"
                    ))
                } else {
                    missing_symbols
                }
            }
        }
    }
}

/// The verdicts split into the usable methods and the others with why.
pub(super) fn split_methods(
    methods: Vec<(Method, Result<(), String>)>,
) -> (Vec<Method>, Vec<(Method, String)>) {
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    for (method, verdict) in methods {
        match verdict {
            Ok(()) => usable.push(method),
            Err(why) => unusable.push((method, why)),
        }
    }
    (usable, unusable)
}

#[cfg(test)]
mod tests {
    use crate::doctor::fixtures::*;
    use crate::method::Method;

    #[test]
    fn missing_injection_symbols_rule_out_ptrace_and_gdb() {
        let mut facts = healthy(14);
        if let Ok(python) = &mut live(&mut facts).inspected {
            python.missing_symbols = vec!["Py_AddPendingCall"];
        }
        let diagnosis = facts.diagnose();
        assert_eq!(diagnosis.usable_methods, [Method::Pep768]);
        assert!(diagnosis
            .why_not(Method::Ptrace)
            .unwrap()
            .contains("Py_AddPendingCall"));
    }
}
