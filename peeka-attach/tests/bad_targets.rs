//! Inspection and the doctor against targets Peeka cannot attach to: a pid
//! that does not exist, a program that is not Python, a zombie, a target of
//! another user, a CPython 3.14 that opted out of remote debugging; and,
//! for contrast, healthy targets of every provisioned interpreter and one in
//! another pid namespace.
//!
//! Every case also checks that the target is exactly as it was: still
//! running (or still a zombie), not stopped, not traced, with the same
//! threads, and without a Peeka directory in its `/tmp`.
//!
//! The permission case needs root: it creates the system user `peeka-test`
//! if missing and re-runs this test binary as that user. Without root it
//! skips with a banner, or fails under `CI=true` / `PEEKA_REQUIRE_ALL_PYTHONS=1`.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::target_script;
use peeka_attach::doctor::{check, doctor, Diagnosis, Severity};
use peeka_attach::procfs::ProcStatus;
use peeka_attach::{InspectError, Method, RemoteDebug, Target};
use peeka_testkit::{skip_test, Interpreter, Manifest, TargetProcess};

/// The unprivileged user of the permission case.
const TEST_USER: &str = "peeka-test";

/// Tells a re-run of this binary which pid to inspect as [`TEST_USER`].
const CHILD_PID_ENV: &str = "PEEKA_BAD_TARGETS_INSPECT_PID";

/// Marks the child's report line on its stdout.
const CHILD_REPORT: &str = "PEEKA_CHILD_REPORT ";

/// What must not change in a target while it is inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    stopped_or_traced: bool,
    zombie: bool,
    tracer: u32,
    threads: u32,
    /// The modification time of the private directory a staging would make
    /// for it (`/tmp/peeka-<pid>` as it sees it), if one exists: a stale one
    /// of an earlier process with the same pid may, but must stay as it was.
    staged: Option<std::time::SystemTime>,
}

fn snapshot(pid: u32) -> Snapshot {
    let status = ProcStatus::read(pid).unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let inner = status.ns_pid.last().copied().unwrap_or(pid);
    let staged = PathBuf::from(format!("/proc/{pid}/root/tmp/peeka-{inner}"));
    Snapshot {
        stopped_or_traced: matches!(status.state, 'T' | 't'),
        zombie: status.is_zombie(),
        tracer: status.tracer_pid,
        threads: status.threads,
        staged: std::fs::symlink_metadata(&staged)
            .and_then(|m| m.modified())
            .ok(),
    }
}

/// Asserts the target is as `before` and that nothing was staged for it.
fn assert_unchanged(pid: u32, before: &Snapshot, what: &str) {
    // A thread that was being stopped would show within a moment.
    std::thread::sleep(Duration::from_millis(100));
    let after = snapshot(pid);
    assert_eq!(
        &after, before,
        "{what}: process {pid} changed, or a private directory was staged for it"
    );
    assert!(
        !after.stopped_or_traced && after.tracer == 0,
        "{what}: {after:?}"
    );
}

fn finding_text(diagnosis: &Diagnosis, id: &str) -> String {
    let finding = diagnosis
        .finding(id)
        .unwrap_or_else(|| panic!("no {id} finding in:\n{diagnosis}"));
    format!(
        "{} | fix: {}",
        finding.summary,
        finding.fix.as_deref().unwrap_or("-")
    )
}

fn severity(diagnosis: &Diagnosis, id: &str) -> Severity {
    diagnosis
        .finding(id)
        .unwrap_or_else(|| panic!("no {id} finding in:\n{diagnosis}"))
        .severity
}

/// A process started by a test, killed (and reaped) when dropped.
///
/// Targets are started with [`TargetProcess`] wherever it fits. This guard
/// is for the two command lines it cannot express: interpreter options
/// before the code (`-X disable-remote-debug`, with the script passed as
/// `-c` text rather than copied into the target's root) and a wrapper
/// program (`unshare`) whose child, not the process started, is the target.
struct Spawned {
    child: Child,
    /// The pid to examine when it is not the child itself.
    pid: u32,
}

impl Spawned {
    /// Starts `command` with stdout piped and waits for its `ready` line.
    fn ready(mut command: Command) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.trim_end() == "ready" => {}
            other => {
                let _ = child.kill();
                let output = child
                    .wait_with_output()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                panic!("{command:?} did not print `ready` ({other:?}); stderr: {output:?}");
            }
        }
        let pid = child.id();
        Self { child, pid }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.pid != self.child.id() {
            if let Ok(pid) = libc::pid_t::try_from(self.pid) {
                // SAFETY: kill has no memory preconditions; the pid is our grandchild.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_pid_that_does_not_exist() {
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(4_194_304);
    // No process can have a pid above the kernel's maximum.
    let pid = pid_max + 1;
    let error = Target::inspect(pid).unwrap_err();
    assert!(
        matches!(error, InspectError::NoSuchProcess { pid: p } if p == pid),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("no process with pid {pid}")),
        "{error}"
    );

    let diagnosis = doctor(pid);
    assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
    assert!(
        finding_text(&diagnosis, check::PROCESS).contains("pgrep"),
        "{diagnosis}"
    );
    assert!(diagnosis.usable_methods.is_empty() && !diagnosis.can_attach());
}

#[test]
fn a_program_that_is_not_python() {
    let mut sleep = Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("start /bin/sleep");
    let pid = sleep.id();
    // Wait for the exec: until then the child is a copy of this test binary.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ProcStatus::read(pid)
        .map(|s| s.name != "sleep")
        .unwrap_or(true)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = snapshot(pid);

    let error = Target::inspect(pid).unwrap_err();
    match &error {
        InspectError::NotCPython { exe, .. } => assert!(exe.ends_with("/sleep"), "{exe}"),
        other => panic!("expected NotCPython, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("/sleep) is not CPython"),
        "the message must name the executable: {message}"
    );

    let diagnosis = doctor(pid);
    assert_eq!(
        severity(&diagnosis, check::CPYTHON),
        Severity::Blocker,
        "{diagnosis}"
    );
    assert!(
        finding_text(&diagnosis, check::CPYTHON).contains("/sleep"),
        "{diagnosis}"
    );
    assert_eq!(
        severity(&diagnosis, check::PROCESS),
        Severity::Ok,
        "{diagnosis}"
    );
    assert!(diagnosis.usable_methods.is_empty());
    assert_eq!(
        diagnosis.why_not(Method::Ptrace),
        Some("it is not CPython (see cpython)")
    );

    assert_unchanged(pid, &before, "/bin/sleep");
    assert!(matches!(sleep.try_wait(), Ok(None)), "sleep must still run");
    let _ = sleep.kill();
    let _ = sleep.wait();
}

#[test]
fn a_zombie() {
    let mut child = Command::new("/bin/true").spawn().expect("start /bin/true");
    let pid = child.id();
    // Not reaped: it stays a zombie until `wait` below.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ProcStatus::read(pid).is_ok_and(|s| s.is_zombie()) {
        assert!(
            Instant::now() < deadline,
            "process {pid} did not become a zombie"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = snapshot(pid);

    let error = Target::inspect(pid).unwrap_err();
    assert!(
        matches!(error, InspectError::Zombie { pid: p } if p == pid),
        "{error:?}"
    );
    assert!(error.to_string().contains("zombie"), "{error}");
    let diagnosis = doctor(pid);
    assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
    let text = finding_text(&diagnosis, check::PROCESS);
    assert!(
        text.contains("zombie") && text.contains(&format!("process {}", std::process::id())),
        "{text}"
    );
    assert_eq!(diagnosis.findings.len(), 1, "{diagnosis}");

    assert_eq!(snapshot(pid), before, "the zombie must stay a zombie");
    let status = child.wait().expect("reap");
    assert!(status.success());
}

/// The unprivileged half of [`another_users_target_is_refused_with_the_fix`]:
/// run as [`TEST_USER`] by that test, it inspects and diagnoses the pid in
/// [`CHILD_PID_ENV`] and reports on stdout. Run normally, it does nothing.
#[test]
fn child_inspects_a_pid_named_in_the_environment() {
    let Some(pid) = std::env::var(CHILD_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_ne!(euid, 0, "the child must not run as root");
    let (kind, message) = match Target::inspect(pid) {
        Ok(_) => ("Ok", String::new()),
        Err(e @ InspectError::PermissionDenied { .. }) => ("PermissionDenied", e.to_string()),
        Err(e) => ("Other", format!("{e:?}")),
    };
    let diagnosis = doctor(pid);
    let findings: Vec<serde_json::Value> = diagnosis
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "check": f.check,
                "severity": f.severity.label(),
                "summary": f.summary,
                "fix": f.fix,
            })
        })
        .collect();
    let report = serde_json::json!({
        "euid": euid,
        "inspect": kind,
        "message": message,
        "findings": findings,
        "usable": diagnosis.usable_methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "report": diagnosis.to_string(),
    });
    println!("{CHILD_REPORT}{report}");
}

/// The uid and gid of [`TEST_USER`], created if missing.
fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|_| out.status.success())
    };
    if id("-u").is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .output()
            .expect("run useradd (package passwd)");
        // Another test run may have created it meanwhile: check again below.
        if !out.status.success() && id("-u").is_none() {
            panic!(
                "useradd {TEST_USER} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let uid = id("-u").unwrap_or_else(|| panic!("user {TEST_USER} has no uid"));
    let gid = id("-g").unwrap_or_else(|| panic!("user {TEST_USER} has no gid"));
    (uid, gid)
}

#[test]
fn another_users_target_is_refused_with_the_fix() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip_test("this test needs root: it creates the user peeka-test and drops to it");
        return;
    }
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let target = TargetProcess::spawn(python, &target_script("sleeper.py"), &[], &[])
        .expect("start the target");
    let pid = target.pid();
    let before = snapshot(pid);
    let (uid, gid) = test_user();

    // This test binary, somewhere the unprivileged user can run it.
    let dir = std::env::temp_dir().join(format!("peeka-bad-targets-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("make a temporary directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let binary = dir.join("bad_targets");
    fs::copy(std::env::current_exe().expect("current_exe"), &binary).expect("copy the test binary");
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).expect("chmod");

    let output = Command::new(&binary)
        .args([
            "--exact",
            "child_inspects_a_pid_named_in_the_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PID_ENV, pid.to_string())
        .env_remove("RUST_BACKTRACE")
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run the test binary as peeka-test");
    let _ = fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // libtest prints the test's name on the same line, before the report.
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(CHILD_REPORT).map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "the unprivileged child reported nothing ({}):\nstdout:\n{stdout}\nstderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let report: serde_json::Value = serde_json::from_str(line).expect("the child's report is JSON");
    let text = report["report"].as_str().unwrap_or_default();
    assert_eq!(report["euid"], uid, "{text}");

    // Target::inspect: PermissionDenied, naming the fix.
    assert_eq!(report["inspect"], "PermissionDenied", "{report}");
    let message = report["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("belongs to uid 0 and we run as uid {uid}")),
        "{message}"
    );
    assert!(
        message.contains("run as that user") && message.contains("as root (sudo"),
        "{message}"
    );

    // The doctor: a ptrace_permission blocker with the same fix, and nothing usable.
    let finding = |id: &str| {
        report["findings"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["check"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no {id} finding:\n{text}"))
    };
    let permission = finding(check::PTRACE_PERMISSION);
    assert_eq!(permission["severity"], "BLOCKER", "{text}");
    let fix = permission["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains("run as that user") && fix.contains("as root"),
        "{text}"
    );
    assert_eq!(
        finding(check::CAPABILITIES)["severity"],
        "BLOCKER",
        "{text}"
    );
    assert_eq!(finding(check::CPYTHON)["severity"], "warning", "{text}");
    assert_eq!(report["usable"], serde_json::json!([]), "{text}");
    assert!(text.contains("verdict: an attach will fail"), "{text}");

    assert_unchanged(pid, &before, "root-owned 3.11 target");
    assert_eq!(target.stderr(), "", "the target printed errors");
}

/// A 3.14 target started with the opt-out; `-X` when `x_option`, else the
/// environment variable.
fn opted_out_314(python: &Interpreter, x_option: bool) -> Spawned {
    let code = fs::read_to_string(target_script("sleeper.py")).expect("read sleeper.py");
    let mut command = python.command();
    if x_option {
        command
            .args(["-X", "disable-remote-debug"])
            .env_remove("PYTHON_DISABLE_REMOTE_DEBUG");
    } else {
        command.env("PYTHON_DISABLE_REMOTE_DEBUG", "1");
    }
    command.args(["-u", "-c", &code]);
    Spawned::ready(command)
}

#[test]
fn a_314_target_that_disabled_remote_debugging() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.14") else {
        return;
    };
    for (x_option, opt_out) in [
        (false, "PYTHON_DISABLE_REMOTE_DEBUG=1"),
        (true, "-X disable-remote-debug"),
    ] {
        let process = opted_out_314(python, x_option);
        let pid = process.pid;
        let before = snapshot(pid);

        let target = Target::inspect(pid).unwrap_or_else(|e| panic!("inspect {opt_out}: {e}"));
        assert_eq!(target.remote_debug, RemoteDebug::Disabled, "{opt_out}");
        assert_eq!(target.python.version.minor, 14);
        drop(target);

        let diagnosis = doctor(pid);
        assert_eq!(
            severity(&diagnosis, check::REMOTE_DEBUG),
            Severity::Blocker,
            "{diagnosis}"
        );
        let text = finding_text(&diagnosis, check::REMOTE_DEBUG);
        assert!(
            text.contains(opt_out),
            "the doctor must name {opt_out}: {text}"
        );
        assert!(text.contains("--method ptrace"), "{text}");
        assert!(!diagnosis.can_attach());
        assert!(
            diagnosis
                .why_not(Method::Pep768)
                .is_some_and(|why| why.contains(opt_out)),
            "{diagnosis}"
        );
        assert!(
            diagnosis.usable_methods.contains(&Method::Ptrace),
            "{diagnosis}"
        );
        // The chroot is another root, and the doctor says so.
        let other_root = format!("root directory {}", python.root.display());
        assert!(
            finding_text(&diagnosis, check::CONTAINER).contains(&other_root),
            "{diagnosis}"
        );

        assert_unchanged(pid, &before, opt_out);
    }
}

#[test]
fn healthy_targets_of_every_interpreter_have_no_blocker() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let target = TargetProcess::spawn(python, &target_script("sleeper.py"), &[], &[])
            .unwrap_or_else(|e| panic!("{}: {e}", python.id));
        let pid = target.pid();
        let before = snapshot(pid);
        let diagnosis = doctor(pid);
        assert!(diagnosis.can_attach(), "{}:\n{diagnosis}", python.id);
        assert!(
            finding_text(&diagnosis, check::CPYTHON)
                .contains(&format!("CPython {} ", python.version)),
            "{}:\n{diagnosis}",
            python.id
        );
        let minor: u8 = python
            .minor
            .trim_start_matches("3.")
            .parse()
            .expect("minor");
        assert_eq!(
            diagnosis.usable_methods.contains(&Method::Pep768),
            minor >= 14,
            "{}:\n{diagnosis}",
            python.id
        );
        assert!(
            diagnosis.usable_methods.contains(&Method::Ptrace),
            "{}:\n{diagnosis}",
            python.id
        );
        let container = finding_text(&diagnosis, check::CONTAINER);
        let other_root = format!("root directory {}", python.root.display());
        assert_eq!(
            container.contains(&other_root),
            python.is_chrooted(),
            "{}: {container}",
            python.id
        );
        assert_unchanged(pid, &before, &python.id);
        assert_eq!(
            target.stderr(),
            "",
            "{}: the target printed errors",
            python.id
        );
    });
}

#[test]
fn a_target_in_another_pid_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip_test("this test needs root: it creates a pid namespace with unshare");
        return;
    }
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .args(&python.argv)
        .arg("-u")
        .arg(target_script("sleeper.py"));
    let mut process = Spawned::ready(command);
    // `unshare --fork` runs Python as its child, pid 1 of the new namespace.
    let unshare = process.child.id();
    let children =
        fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).expect("children");
    process.pid = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("python's pid");
    let pid = process.pid;
    let before = snapshot(pid);

    let target = Target::inspect(pid).unwrap_or_else(|e| panic!("inspect: {e}"));
    assert_eq!(target.ns_pid, 1);
    drop(target);
    let diagnosis = doctor(pid);
    assert!(diagnosis.can_attach(), "{diagnosis}");
    let text = finding_text(&diagnosis, check::CONTAINER);
    assert!(
        text.contains("another pid namespace (pid 1 there)"),
        "{text}"
    );
    assert!(text.contains("another mount namespace"), "{text}");
    assert!(
        finding_text(&diagnosis, check::STAGING).contains("/tmp/peeka-1"),
        "{diagnosis}"
    );
    assert_unchanged(pid, &before, "unshared 3.11 target");
}
