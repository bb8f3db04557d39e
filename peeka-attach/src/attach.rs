//! Attaching, end to end: inspect, choose a method, prepare the private
//! directory, inject the bootstrap, wait for the agent.

use std::time::{Duration, Instant};

use crate::bootstrap::{AgentFiles, BootstrapStatus, NoReport, Staging};
use crate::error::AttachError;
use crate::method::{InjectRequest, Injector, Method, MethodChoice, Timeline};
use crate::pep768::{Pep768Injector, Pep768UnlessIdle};
use crate::python::PythonVersion;
use crate::target::{Arch, RemoteDebug, Target};

/// The default time an attach may take before it is abandoned.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to attach.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// A method, or `auto`.
    pub method: MethodChoice,
    /// How long the whole attach may take.
    pub timeout: Duration,
    /// What the bootstrap loads.
    pub agent: AgentFiles,
}

impl AttachOptions {
    /// `auto`, the default timeout, and `agent`.
    pub fn new(agent: AgentFiles) -> Self {
        Self {
            method: MethodChoice::Auto,
            timeout: DEFAULT_TIMEOUT,
            agent,
        }
    }
}

/// A successful attach.
#[derive(Debug)]
pub struct Attached {
    /// The target's pid (ours).
    pub pid: u32,
    /// The target's Python version.
    pub python: PythonVersion,
    /// The method that ran.
    pub method: Method,
    /// The private directory.
    pub staging: Staging,
    /// What the bootstrap reported (`Loaded` or `AlreadyRunning`).
    pub status: BootstrapStatus,
    /// Every step and how long it took.
    pub timeline: Timeline,
    /// Methods `auto` tried first, and why each could not be used.
    pub skipped: Vec<(Method, String)>,
}

/// The methods `choice` allows for `target`, in order.
///
/// # Errors
/// [`AttachError::RemoteDebugDisabled`] under `auto` when the operator
/// disabled remote debugging: `auto` never overrides that choice with
/// another method.
pub fn plan(target: &Target, choice: MethodChoice) -> Result<Vec<Method>, AttachError> {
    if let MethodChoice::Only(method) = choice {
        return Ok(vec![method]);
    }
    let mut methods = Vec::new();
    match &target.remote_debug {
        RemoteDebug::Enabled => methods.push(Method::Pep768),
        RemoteDebug::Disabled => {
            return Err(AttachError::RemoteDebugDisabled {
                pid: target.pid,
                likely: crate::remote_debug_optout::likely_opt_out(target.pid),
            })
        }
        RemoteDebug::Unsupported | RemoteDebug::Unknown(_) => {}
    }
    if cfg!(target_os = "linux") {
        if target.arch == Arch::X86_64 {
            methods.push(Method::Ptrace);
        }
        methods.push(Method::Gdb);
    } else {
        methods.push(Method::Lldb);
    }
    Ok(methods)
}

/// The backend of `method`, when this build has it. `then` is the method
/// `auto` would try next (`None` for an explicit method): PEP 768 gives
/// way to the ptrace method's GIL-released route when no thread runs
/// Python (see [`Pep768UnlessIdle`]).
fn injector(method: Method, then: Option<Method>) -> Option<Box<dyn Injector>> {
    match method {
        Method::Pep768 if then == Some(Method::Ptrace) => {
            Some(Box::new(Pep768UnlessIdle::default()))
        }
        Method::Pep768 => Some(Box::new(Pep768Injector)),
        #[cfg(target_os = "linux")]
        Method::Ptrace => Some(Box::new(crate::ptrace::PtraceInjector::default())),
        #[cfg(target_os = "linux")]
        Method::Gdb => Some(Box::new(crate::gdb::GdbInjector::default())),
        #[cfg(target_os = "macos")]
        Method::Lldb => Some(Box::new(crate::lldb::LldbInjector::default())),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Whether `auto` may go on to the next method after this error: only when
/// nothing the method did can still act in the target: it could not even
/// start (nothing was asked of the target), or it asked and withdrew every
/// request before any was taken ([`AttachError::NoTaker`]).
fn may_try_next(error: &AttachError) -> bool {
    matches!(
        error,
        AttachError::MethodUnavailable { .. }
            | AttachError::DebuggerMissing { .. }
            | AttachError::NoTaker { .. }
    )
}

/// Attaches to process `pid`: the agent is running in it when this returns.
///
/// # Errors
/// [`AttachError`], naming the fix. The target is left as it was: nothing
/// pending, and the private directory removed unless an earlier attach
/// made it.
pub fn attach(pid: u32, options: &AttachOptions) -> Result<Attached, AttachError> {
    let deadline = Instant::now() + options.timeout;
    let mut timeline = Timeline::default();
    let target = timeline.time("inspect target", || Target::inspect(pid))?;
    if let Err(why) = &target.access.verdict {
        return Err(AttachError::PermissionDenied {
            pid,
            why: why.clone(),
        });
    }
    // A process stopped by job control stays stopped: refuse before any
    // method touches it (see `job_control`).
    crate::job_control::refuse_if_stopped(pid)?;
    // Whatever went wrong, once the target is gone that is the news.
    let or_exited = |error: AttachError| {
        if target.identity.is_gone() {
            AttachError::TargetExited { pid }
        } else {
            error
        }
    };
    let methods = plan(&target, options.method)?;
    let staging = timeline
        .time("prepare private directory", || {
            Staging::prepare(&target, &options.agent)
        })
        .map_err(|e| or_exited(e.into()))?;

    let mut skipped = Vec::new();
    let mut outcome = Err(AttachError::MethodUnavailable {
        method: methods.first().copied().unwrap_or(Method::Ptrace),
        pid,
        why: "no attach method is available on this platform".into(),
    });
    let mut then = methods.iter().copied().skip(1);
    for method in methods.iter().copied() {
        let next = then.next();
        let next = (options.method == MethodChoice::Auto)
            .then_some(next)
            .flatten();
        let Some(backend) = injector(method, next) else {
            let why = format!("this build of Peeka has no {method} backend on this platform");
            skipped.push((method, why.clone()));
            outcome = Err(AttachError::MethodUnavailable { method, pid, why });
            continue;
        };
        let request = InjectRequest {
            target: &target,
            staging: &staging,
            deadline,
        };
        match backend.inject(&request).map_err(or_exited) {
            Ok(steps) => {
                timeline.extend(steps);
                outcome = Ok(method);
                break;
            }
            Err(error) if options.method == MethodChoice::Auto && may_try_next(&error) => {
                skipped.push((method, error.to_string()));
                let mut error = error;
                if let AttachError::NoTaker { steps, .. } = &mut error {
                    // What it did belongs to this attach's story.
                    timeline.extend(std::mem::take(steps));
                    if let Some(next) = next {
                        timeline.steps.push(crate::method::Step {
                            name: format!(
                                "{method} gave way to {next}: its requests were withdrawn"
                            ),
                            elapsed: Duration::ZERO,
                        });
                    }
                }
                outcome = Err(error);
            }
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }

    let result = outcome.and_then(|method| {
        // The bootstrap was claimed; the loader thread reports shortly.
        let report_deadline = deadline.max(Instant::now() + Duration::from_secs(2));
        let report = timeline.time("wait for the agent", || {
            staging.wait_report(report_deadline)
        });
        match report {
            Ok(BootstrapStatus::Failed(traceback)) => Err(AttachError::AgentFailed { pid, traceback }),
            Ok(status) => Ok((method, status)),
            Err(NoReport::TargetExited { .. }) => Err(AttachError::TargetExited { pid }),
            Err(NoReport::Rejected { path, problem }) => Err(AttachError::UntrustedStatusFile {
                pid,
                path,
                problem,
            }),
            Err(_) => Err(or_exited(AttachError::Timeout {
                pid,
                method,
                waited: options.timeout,
                advice: "The bootstrap started but the agent did not report back; the target may be overloaded or holding the GIL in C code. Try again with a longer --timeout.".into(),
            })),
        }
    });

    // This attach's script is never needed again: a late request finds nothing.
    staging.remove_script();
    match result {
        Ok((method, status)) => Ok(Attached {
            pid,
            python: target.python.version,
            method,
            staging,
            status,
            timeline,
            skipped,
        }),
        Err(error) => {
            // An earlier attach's directory stays for its agent, unless the
            // target is gone and nothing can use it any more. Removal goes
            // through the directory opened when staging, so it works even
            // when the target's root went with it.
            if !staging.reused || matches!(error, AttachError::TargetExited { .. }) {
                // Requests an earlier, killed attach left pending name
                // scripts in there: withdraw them first (3.14+).
                if !matches!(error, AttachError::TargetExited { .. }) {
                    let _ = crate::pep768::withdraw_pending_requests(&target);
                }
                staging.remove_all();
            }
            Err(error)
        }
    }
}
