//! The `route` check: which route an attach with `auto` would take now, and
//! why. The facts are one look at the threads through `/proc` (and, on
//! 3.13+, at the GIL), judged by the attach's own functions: the ptrace
//! method's first route and its judgement of each wait
//! ([`first_route`](crate::ptrace::tasks::first_route), made when the facts
//! were gathered) and PEP 768's test of whether anyone runs Python
//! ([`python_activity`]). Nothing here decides eligibility again; it puts
//! those verdicts into words.

use crate::doctor::check;
use crate::doctor::facts::{Facts, Inspected, LiveFacts};
use crate::doctor::findings::Finding;
use crate::doctor::route::{RouteForecast, RouteKind, ThreadSeen};
use crate::method::Method;
use crate::pep768::{python_activity, Gil, PythonActivity, PythonLook, NO_TAKER_WINDOW};
use crate::ptrace::tasks::{FirstRoute, RoutePlan, ThreadActivity, ThreadLook};
use crate::ptrace::PtraceInjector;
use crate::target::RemoteDebug;

/// The fix when no route can run Python now.
const WAIT_FIX: &str = "attach while the process handles work (a request, a timer, a signal): the attach waits for the first thread that runs Python, up to its --timeout";

/// What the sentences are made of.
struct Seen<'a> {
    pid: u32,
    python: &'a Inspected,
    looks: &'a [ThreadLook],
    py: Option<&'a PythonLook>,
}

impl Seen<'_> {
    fn gil(&self) -> Option<Gil> {
        self.py.and_then(|p| p.gil)
    }

    /// The thread that holds the GIL, when the GIL was read (3.13+).
    fn gil_holder(&self) -> Option<u32> {
        match self.gil() {
            Some(Gil::Held { tid }) => tid,
            _ => None,
        }
    }

    /// The GIL's holder, when it is blocked in a system call: no thread
    /// can run Python until it returns (the GIL-released route's program
    /// finds it holding the GIL, and every other route needs the GIL).
    fn blocked_holder(&self) -> Option<u32> {
        let holder = self.gil_holder()?;
        self.looks
            .iter()
            .any(|l| l.tid == holder && matches!(l.activity, ThreadActivity::InSyscall(_)))
            .then_some(holder)
    }

    /// "thread 12" or "the main thread 12".
    fn thread(&self, tid: u32) -> String {
        if tid == self.pid {
            format!("the main thread {tid}")
        } else {
            format!("thread {tid}")
        }
    }

    /// The threads of `plan` that wait where the GIL-released route may
    /// run the bootstrap, in the attach's order (the main thread first),
    /// described: "thread 12 waits in `accept4` with its thread state
    /// detached (the GIL is free); also thread 13 in `read`". `said_free`:
    /// the sentence already says that the GIL is free.
    fn waiting(&self, plan: &RoutePlan, said_free: bool) -> Option<String> {
        let mut waiting: Vec<(u32, &str)> = plan
            .threads
            .iter()
            .filter(|t| Some(t.look.tid) != self.gil_holder())
            .filter_map(|t| match &t.wait {
                Some(Ok(name)) => Some((t.look.tid, *name)),
                _ => None,
            })
            .collect();
        waiting.sort_by_key(|&(tid, _)| tid != self.pid);
        let (&(first, name), rest) = waiting.split_first()?;
        let detached = match self.gil() {
            Some(Gil::Free) if said_free => " with its thread state detached".to_owned(),
            Some(Gil::Free) => " with its thread state detached (the GIL is free)".to_owned(),
            Some(Gil::Held { tid: Some(holder) }) if holder != first => {
                format!(" with its thread state detached (thread {holder} holds the GIL)")
            }
            _ => ", a wait CPython enters with its thread state detached (the attach checks it with PyGILState_Check before running anything)".to_owned(),
        };
        let mut text = format!("{} waits in `{name}`{detached}", self.thread(first));
        if !rest.is_empty() {
            let others: Vec<String> = rest
                .iter()
                .take(3)
                .map(|(tid, name)| format!("{tid} in `{name}`"))
                .collect();
            text.push_str(&format!("; also thread {}", others.join(", ")));
            if rest.len() > 3 {
                text.push_str(&format!(" and {} more", rest.len() - 3));
            }
        }
        Some(text)
    }

    /// Why the blocked threads of `plan` cannot take the GIL-released
    /// route: "thread 12: it waits on a semaphore ...".
    fn not_waiting(&self, plan: &RoutePlan) -> String {
        let reasons: Vec<String> = plan
            .threads
            .iter()
            .filter_map(|t| match &t.wait {
                Some(Err(why)) => Some(format!("{}: {why}", self.thread(t.look.tid))),
                _ => None,
            })
            .take(2)
            .collect();
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        }
    }

    /// Who may take a pending call among `running`: the GIL's holder when
    /// it is known, else the first running thread.
    fn runner(&self, running: &[u32]) -> String {
        match self.gil() {
            Some(Gil::Held { tid: Some(holder) }) => {
                format!("{} runs Python (it holds the GIL)", self.thread(holder))
            }
            _ => match running.first() {
                Some(&tid) => format!(
                    "{} is running (on a CPU) and takes it at its next bytecode boundary if it runs Python",
                    self.thread(tid)
                ),
                None => "a thread may be running".to_owned(),
            },
        }
    }
}

/// The route, its severity and the sentence, before they become a finding:
/// "`head`: `why`".
struct Verdict {
    method: Option<Method>,
    kind: RouteKind,
    head: String,
    why: String,
    fix: Option<String>,
}

impl Verdict {
    fn new(method: Method, kind: RouteKind, head: impl Into<String>, why: String) -> Self {
        Self {
            method: Some(method),
            kind,
            head: head.into(),
            why,
            fix: None,
        }
    }

    /// No route can run Python now.
    fn waiting(method: Option<Method>, why: String) -> Self {
        Self {
            method,
            kind: RouteKind::WaitForPython,
            head: "none now".into(),
            why,
            fix: Some(WAIT_FIX.into()),
        }
    }

    fn summary(&self) -> String {
        format!("{}: {}", self.head, self.why)
    }
}

impl Facts {
    /// The `route` finding and forecast, when the threads were looked at
    /// and some method can attach.
    pub(super) fn route_finding(
        &self,
        live: &LiveFacts,
        methods: &[(Method, Result<(), String>)],
    ) -> Option<(Finding, RouteForecast)> {
        let route = live.route.as_ref()?;
        let python = live.inspected.as_ref().ok()?;
        let usable = |m: Method| methods.iter().any(|(x, v)| *x == m && v.is_ok());
        let first = Method::ALL.into_iter().find(|&m| usable(m))?;
        let looks = match &route.looks {
            Ok(looks) => looks.as_slice(),
            Err(why) => {
                let mut unknown =
                    Verdict::waiting(None, format!("the threads could not be looked at ({why})"));
                unknown.head = "unknown".into();
                return Some(forecast(unknown, Vec::new(), None));
            }
        };
        let py = route.python.as_ref().ok();
        let plan = route.ptrace.as_ref().ok();
        let seen = Seen {
            pid: self.pid,
            python,
            looks,
            py,
        };
        let verdict = match (first, &python.remote_debug) {
            (_, RemoteDebug::Disabled) if usable(Method::Ptrace) => {
                let mut verdict = ptrace_verdict(&seen, plan);
                verdict.head = format!(
                    "none with `auto`, which refuses a target that disabled remote debugging (see {}); with `--method ptrace`, {}",
                    check::REMOTE_DEBUG,
                    verdict.head
                );
                verdict
            }
            (Method::Pep768, _) => pep768_verdict(&seen, plan.filter(|_| usable(Method::Ptrace))),
            (Method::Ptrace, _) => ptrace_verdict(&seen, plan),
            (method, _) => Verdict::new(
                method,
                RouteKind::Debugger,
                method.name(),
                "the methods before it cannot be used here (see the methods below); it queues a pending call, and before 3.12 stops the first thread that releases the GIL".into(),
            ),
        };
        let threads = threads_seen(&seen, plan);
        let gil_free = seen.gil().map(|gil| gil == Gil::Free);
        Some(forecast(verdict, threads, gil_free))
    }
}

/// The verdict when `auto` starts with PEP 768; `plan` is the ptrace
/// method's, when it can follow.
fn pep768_verdict(seen: &Seen<'_>, plan: Option<&RoutePlan>) -> Verdict {
    let threads = seen.py.map_or(&[][..], |p| p.threads.as_slice());
    let activity = python_activity(seen.looks, threads, seen.gil());
    let head = format!(
        "PEP 768 remote exec (Python {}, remote debugging enabled)",
        seen.python.version
    );
    let takes = "and takes the request at its next eval-breaker check";
    match activity {
        PythonActivity::GilHeld {
            tid: Some(tid),
            blocked: true,
        } => Verdict::waiting(
            Some(Method::Pep768),
            format!(
                "{} holds the GIL while blocked in a system call, so no thread can run Python until it returns; PEP 768 asks every thread and waits for one",
                seen.thread(tid)
            ),
        ),
        PythonActivity::GilHeld { tid, .. } => Verdict::new(
            Method::Pep768,
            RouteKind::RemoteExec,
            head,
            match tid {
                Some(tid) => format!("{} runs Python (it holds the GIL) {takes}", seen.thread(tid)),
                None => format!("a thread runs Python (the GIL is held) {takes}"),
            },
        ),
        PythonActivity::Running(running) if !running.is_empty() => Verdict::new(
            Method::Pep768,
            RouteKind::RemoteExec,
            head,
            format!(
                "{} is running (on a CPU) and, if it runs Python, {takes}",
                seen.thread(running[0])
            ),
        ),
        PythonActivity::Running(_) => Verdict::waiting(
            Some(Method::Pep768),
            "no thread of the interpreter was found among the process's threads".into(),
        ),
        PythonActivity::Nobody { threads, gil_free } => {
            let nobody = format!(
                "no thread runs Python: every thread of the interpreter ({threads}) is blocked in a system call{}",
                if gil_free { " and the GIL is free" } else { "" }
            );
            let window = NO_TAKER_WINDOW.as_millis();
            let Some(plan) = plan else {
                return Verdict::waiting(
                    Some(Method::Pep768),
                    format!("{nobody}; PEP 768 asks every thread and waits for one to run Python (the ptrace method, whose GIL-released route reaches such threads, cannot be used here)"),
                );
            };
            let then = ptrace_verdict(seen, Some(plan));
            if then.kind == RouteKind::WaitForPython {
                return Verdict::waiting(
                    Some(Method::Pep768),
                    format!(
                        "{nobody}; PEP 768 gives way after {window} ms without a taker, and then {}",
                        then.why
                    ),
                );
            }
            let why = match (&plan.first, seen.waiting(plan, gil_free)) {
                (FirstRoute::GilReleasedAllBlocked, Some(waiting)) => format!("{nobody}; {waiting}"),
                _ => format!("{nobody}; {}", then.why),
            };
            Verdict::new(
                Method::Ptrace,
                RouteKind::RemoteExecThenGilReleased,
                format!(
                    "{}, once PEP 768 gets no taker within {window} ms (its requests are then withdrawn)",
                    then.head
                ),
                why,
            )
        }
    }
}

/// The verdict for the ptrace method's route, from its plan.
fn ptrace_verdict(seen: &Seen<'_>, plan: Option<&RoutePlan>) -> Verdict {
    let Some(plan) = plan else {
        return Verdict::waiting(
            Some(Method::Ptrace),
            "the ptrace method's route could not be planned".into(),
        );
    };
    if let Some(holder) = seen.blocked_holder() {
        return Verdict::waiting(
            Some(Method::Ptrace),
            format!(
                "{} holds the GIL while blocked in a system call, so no thread can run Python until it returns (the GIL-released route finds it holding the GIL, and a pending call needs the GIL too)",
                seen.thread(holder)
            ),
        );
    }
    let grace = PtraceInjector::DEFAULT_GRACE_PERIOD.as_millis();
    let version = seen.python.version;
    let running: Vec<u32> = plan
        .threads
        .iter()
        .filter(|t| !matches!(t.look.activity, ThreadActivity::InSyscall(_)))
        .map(|t| t.look.tid)
        .collect();
    match &plan.first {
        FirstRoute::PendingCall { running } => {
            let then = match seen.waiting(plan, false) {
                Some(_) => {
                    format!("; if it is not run within {grace} ms, the GIL-released route follows")
                }
                None => String::new(),
            };
            let only_main = if plan.main_thread_only {
                format!(" (before 3.12 only the main thread runs pending calls; this is Python {version})")
            } else {
                String::new()
            };
            Verdict::new(
                Method::Ptrace,
                RouteKind::PendingCall,
                "ptrace pending call",
                format!("{}{only_main}{then}", seen.runner(running)),
            )
        }
        FirstRoute::PendingCallOnly if running.is_empty() => Verdict::waiting(
            Some(Method::Ptrace),
            "the interpreter lacks the PyGILState_* functions of the GIL-released route, and no thread is running to take a pending call".into(),
        ),
        FirstRoute::PendingCallOnly => Verdict::new(
            Method::Ptrace,
            RouteKind::PendingCall,
            "ptrace pending call only (the interpreter lacks the PyGILState_* functions of the GIL-released route)",
            seen.runner(&running),
        ),
        FirstRoute::GilReleasedMainParked | FirstRoute::GilReleasedAllBlocked => {
            let why = if plan.first == FirstRoute::GilReleasedMainParked {
                format!(
                    "the main thread {} is parked in a system call, and before 3.12 only it runs pending calls (this is Python {version})",
                    seen.pid
                )
            } else {
                "every thread is blocked in a system call".to_owned()
            };
            let head = "ptrace, GIL-released route";
            match (seen.waiting(plan, false), running.first()) {
                (Some(waiting), _) => Verdict::new(
                    Method::Ptrace,
                    RouteKind::GilReleased,
                    head,
                    format!("{why}; {waiting}"),
                ),
                (None, Some(&tid)) => Verdict::new(
                    Method::Ptrace,
                    RouteKind::GilReleased,
                    head,
                    format!(
                        "{why}; no thread waits where it can run Python now, and {} is running: it is followed to the next wait it makes",
                        seen.thread(tid)
                    ),
                ),
                (None, None) => Verdict::waiting(
                    Some(Method::Ptrace),
                    format!(
                        "{why}, and no thread waits where the GIL-released route can run Python{}",
                        seen.not_waiting(plan)
                    ),
                ),
            }
        }
        FirstRoute::PendingCallForLater => Verdict::waiting(
            Some(Method::Ptrace),
            format!(
                "every thread is blocked in a system call, none where the GIL-released route can run Python{}; the attach queues a pending call for the first thread that runs Python",
                seen.not_waiting(plan)
            ),
        ),
    }
}

/// Every thread as the doctor saw it.
fn threads_seen(seen: &Seen<'_>, plan: Option<&RoutePlan>) -> Vec<ThreadSeen> {
    let holder = match seen.gil() {
        Some(Gil::Held { tid }) => tid,
        _ => None,
    };
    seen.looks
        .iter()
        .map(|look| {
            let (state, syscall) = match look.activity {
                ThreadActivity::Running => ("running", None),
                ThreadActivity::InSyscall(number) => ("blocked", u64::try_from(number).ok()),
                ThreadActivity::Other => ("unknown", None),
            };
            ThreadSeen {
                tid: look.tid,
                main: look.tid == seen.pid,
                state,
                syscall,
                gil_released: match plan
                    .and_then(|plan| plan.threads.iter().find(|t| t.look.tid == look.tid))
                    .and_then(|t| t.wait.clone())
                {
                    // What the route's program would find (PyGILState_Check).
                    Some(Ok(_)) if holder == Some(look.tid) => {
                        Some(Err("it holds the GIL while blocked".into()))
                    }
                    judged => judged,
                },
                holds_gil: holder == Some(look.tid),
            }
        })
        .collect()
}

/// The finding and the forecast of `verdict`.
fn forecast(
    verdict: Verdict,
    threads: Vec<ThreadSeen>,
    gil_free: Option<bool>,
) -> (Finding, RouteForecast) {
    let summary = format!("attach route: {}", verdict.summary());
    let finding = match verdict.fix {
        Some(fix) => Finding::warning(check::ROUTE, summary.clone(), fix),
        None => Finding::ok(check::ROUTE, summary.clone()),
    };
    let forecast = RouteForecast {
        method: verdict.method,
        kind: verdict.kind,
        summary,
        threads,
        gil_free,
    };
    (finding, forecast)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::facts::RouteFacts;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;
    use crate::ptrace::tasks::{first_route, RouteThread};

    /// A thread blocked in system call `number`, judged `wait`.
    fn blocked(tid: u32, number: i64, wait: Result<&'static str, String>) -> RouteThread {
        RouteThread {
            look: ThreadLook {
                tid,
                activity: ThreadActivity::InSyscall(number),
                args: Some([0; 6]),
            },
            wait: Some(wait),
        }
    }

    fn running(tid: u32) -> RouteThread {
        RouteThread {
            look: ThreadLook {
                tid,
                activity: ThreadActivity::Running,
                args: None,
            },
            wait: None,
        }
    }

    fn semaphore(tid: u32) -> RouteThread {
        blocked(tid, 202, Err("it waits on a semaphore".into()))
    }

    /// `facts` with these threads, decided as the attach decides, and the
    /// GIL (3.13+) as given.
    fn with_threads(mut facts: Facts, threads: Vec<RouteThread>, gil: Option<Gil>) -> Facts {
        let live = live(&mut facts);
        let minor = live.inspected.as_ref().unwrap().version.minor;
        let main_thread_only = minor < 12;
        let plan = RoutePlan {
            first: first_route(PID, &threads, main_thread_only, true),
            threads: threads.clone(),
            main_thread_only,
        };
        live.route = Some(RouteFacts {
            looks: Ok(threads.iter().map(|t| t.look.clone()).collect()),
            ptrace: Ok(plan),
            python: if minor >= 13 {
                Ok(PythonLook {
                    threads: threads
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (0x1000 * (i as u64 + 1), t.look.tid))
                        .collect(),
                    gil,
                })
            } else {
                Err("before 3.13".into())
            },
        });
        facts
    }

    fn route(facts: &Facts) -> RouteForecast {
        facts.diagnose().route.expect("a route")
    }

    #[test]
    fn an_idle_3_14_target_gets_pep768_then_the_gil_released_route() {
        let facts = with_threads(
            healthy(14),
            vec![semaphore(PID), blocked(4243, 288, Ok("accept4"))],
            Some(Gil::Free),
        );
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ROUTE), Severity::Ok);
        let route = diagnosis.route.clone().unwrap();
        assert_eq!(route.kind, RouteKind::RemoteExecThenGilReleased);
        assert_eq!(route.method, Some(Method::Ptrace));
        assert_eq!(route.gil_free, Some(true));
        let text = text(&diagnosis, check::ROUTE);
        for needle in [
            "attach route: ptrace, GIL-released route, once PEP 768 gets no taker within 30 ms",
            "every thread of the interpreter (2) is blocked in a system call and the GIL is free",
            "thread 4243 waits in `accept4` with its thread state detached",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
        assert_eq!(route.threads.len(), 2);
        assert!(route.threads[0].main);
        assert_eq!(route.threads[1].gil_released, Some(Ok("accept4")));
    }

    #[test]
    fn a_busy_3_14_target_gets_pep768() {
        let facts = with_threads(
            healthy(14),
            vec![running(PID)],
            Some(Gil::Held { tid: Some(PID) }),
        );
        let route = route(&facts);
        assert_eq!(route.kind, RouteKind::RemoteExec);
        assert_eq!(route.method, Some(Method::Pep768));
        assert!(
            route.summary.contains("PEP 768 remote exec (Python 3.14.1, remote debugging enabled): the main thread 4242 runs Python (it holds the GIL)"),
            "{}",
            route.summary
        );
        assert!(route.threads[0].holds_gil);
    }

    #[test]
    fn a_3_14_thread_holding_the_gil_while_blocked_stalls_every_route() {
        let facts = with_threads(
            healthy(14),
            vec![blocked(PID, 34, Ok("pause"))],
            Some(Gil::Held { tid: Some(PID) }),
        );
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ROUTE), Severity::Warning);
        assert!(text(&diagnosis, check::ROUTE).contains("holds the GIL while blocked"));
        assert_eq!(diagnosis.route.unwrap().kind, RouteKind::WaitForPython);
    }

    #[test]
    fn a_3_13_thread_holding_the_gil_while_blocked_leaves_ptrace_no_route() {
        let facts = with_threads(
            healthy(13),
            vec![
                blocked(PID, 34, Ok("pause")),
                blocked(4243, 23, Ok("select")),
            ],
            Some(Gil::Held { tid: Some(PID) }),
        );
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ROUTE), Severity::Warning);
        let text = text(&diagnosis, check::ROUTE);
        assert!(
            text.contains("none now: the main thread 4242 holds the GIL while blocked"),
            "{text}"
        );
        let route = diagnosis.route.unwrap();
        assert_eq!(route.kind, RouteKind::WaitForPython);
        assert_eq!(
            route.threads[0].gil_released,
            Some(Err("it holds the GIL while blocked".into()))
        );
        assert_eq!(route.threads[1].gil_released, Some(Ok("select")));
    }

    #[test]
    fn a_parked_3_11_main_thread_gets_the_gil_released_route() {
        let facts = with_threads(
            healthy(11),
            vec![blocked(PID, 202, Ok("futex")), running(4243)],
            None,
        );
        let route = route(&facts);
        assert_eq!(route.kind, RouteKind::GilReleased);
        assert!(
            route.summary.contains("the main thread 4242 is parked in a system call, and before 3.12 only it runs pending calls")
                && route.summary.contains("the main thread 4242 waits in `futex`, a wait CPython enters with its thread state detached"),
            "{}",
            route.summary
        );
        assert_eq!(route.gil_free, None);
    }

    #[test]
    fn a_running_3_12_thread_gets_the_pending_call() {
        let facts = with_threads(
            healthy(12),
            vec![blocked(PID, 23, Ok("select")), running(4243)],
            None,
        );
        let route = route(&facts);
        assert_eq!(route.kind, RouteKind::PendingCall);
        assert!(
            route
                .summary
                .contains("ptrace pending call: thread 4243 is running")
                && route
                    .summary
                    .contains("within 150 ms, the GIL-released route follows"),
            "{}",
            route.summary
        );
    }

    #[test]
    fn an_idle_3_13_target_gets_the_gil_released_route_at_once() {
        let facts = with_threads(
            healthy(13),
            vec![semaphore(PID), blocked(4243, 0, Ok("read"))],
            Some(Gil::Free),
        );
        let route = route(&facts);
        assert_eq!(route.kind, RouteKind::GilReleased);
        assert!(
            route.summary.contains("ptrace, GIL-released route: every thread is blocked in a system call; thread 4243 waits in `read` with its thread state detached (the GIL is free)"),
            "{}",
            route.summary
        );
    }

    #[test]
    fn no_route_when_every_thread_waits_where_none_can_be_used() {
        for minor in [13, 14] {
            let facts = with_threads(
                healthy(minor),
                vec![semaphore(PID), semaphore(4243)],
                Some(Gil::Free),
            );
            let diagnosis = facts.diagnose();
            assert_eq!(severity(&diagnosis, check::ROUTE), Severity::Warning);
            let text = text(&diagnosis, check::ROUTE);
            assert!(
                text.contains("attach route: none now")
                    && text.contains("it waits on a semaphore")
                    && text.contains("fix: attach while the process handles work"),
                "{text}"
            );
            assert_eq!(diagnosis.route.unwrap().kind, RouteKind::WaitForPython);
        }
    }

    #[test]
    fn disabled_remote_debugging_names_the_route_of_an_explicit_ptrace() {
        let mut facts = healthy(14);
        live(&mut facts).inspected = Ok(inspected(14, RemoteDebug::Disabled));
        let facts = with_threads(facts, vec![blocked(PID, 23, Ok("select"))], Some(Gil::Free));
        let text = text(&facts.diagnose(), check::ROUTE);
        assert!(
            text.contains("none with `auto`")
                && text.contains("with `--method ptrace`, ptrace, GIL-released route"),
            "{text}"
        );
    }

    #[test]
    fn no_route_finding_without_a_look_at_the_threads() {
        assert!(healthy(14).diagnose().route.is_none());
        let mut facts = healthy(11);
        facts.process = crate::doctor::facts::ProcessFacts::Missing;
        assert!(facts.diagnose().route.is_none());
    }
}
