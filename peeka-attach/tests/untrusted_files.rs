//! Root attaching to a process of user `nobody` never trusts what `nobody`
//! can write: the private directory is theirs, so anything in it may have
//! been planted.
//!
//! Each test runs a real interpreter as `nobody` (uid 65534) and an
//! attacker process as `nobody` too (a Python loop, see [`ATTACKER`]) that
//! watches the private directory through `/proc/PID/root` and plants:
//!
//! - at `status.<token>` (the token is in the bootstrap script's name, so
//!   it is known as soon as the script appears): a link to a file only root
//!   may read, a FIFO, a link to `/dev/zero`, a 1 MiB file. The attach must
//!   return by its deadline, name the rejected file and what was wrong, never
//!   show the secret, and not grow;
//! - links to a root-only directory inside the private directory: cleaning
//!   up removes the links, never what they point to;
//! - the private directory itself swapped, again and again, for a link to
//!   a root-only directory while root stages: nothing may be written or
//!   removed there.
//!
//! The agent used is slow (its entry function sleeps a minute), so the
//! bootstrap claims the attach and never writes a status of its own before
//! the deadline: what root finds at the status file's name is the plant.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::untrusted_file::UntrustedFileError;
use peeka_attach::{AgentFiles, AttachError, Staging, Target};
use peeka_testkit::{skip_test, Interpreter, Manifest, TargetProcess};

/// The uid and gid of `nobody`.
const NOBODY: u32 = 65534;

/// The attach timeout of these tests.
const TIMEOUT: Duration = Duration::from_secs(3);

/// How much later than its timeout an attach may return: the deadline is
/// checked between two looks at the status file, a few ms apart.
const MARGIN: Duration = Duration::from_millis(1500);

/// How much the test process may grow during one attach.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// Beyond this, the process is aborted before it hurts the machine.
const ABORT_RSS_KIB: u64 = 768 * 1024;

/// The attacker, run as `nobody`: `ATTACKER DIR MODE LINK_TARGET SECONDS`.
///
/// - `secret`, `zero`: keeps `status.<token>` a link to `LINK_TARGET`;
/// - `fifo`: keeps it a FIFO;
/// - `big`: keeps it a 1 MiB regular file;
/// - `links`: once, plants `x -> LINK_TARGET`, and `sub/y -> LINK_TARGET`,
///   `sub/z -> LINK_TARGET/notes.txt`;
/// - `swap`: makes `DIR` itself (as the reused private directory), then
///   keeps swapping it for a link to `LINK_TARGET` and back.
///
/// It prints `watching` once it runs, and `planted` the first time it
/// planted something.
const ATTACKER: &str = r#"
import os, shutil, stat, sys, time
directory, mode, link_target, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
BIG = 1 << 20
end = time.monotonic() + seconds
tokens = set()
announced = False

def announce():
    global announced
    if not announced:
        print("planted", flush=True)
        announced = True

def is_planted(path):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if mode == "fifo":
        return stat.S_ISFIFO(st.st_mode)
    if mode == "big":
        return stat.S_ISREG(st.st_mode) and st.st_size == BIG
    return stat.S_ISLNK(st.st_mode)

def plant(path):
    if mode == "fifo":
        os.mkfifo(path, 0o600)
    elif mode == "big":
        with open(path + ".planting", "wb") as handle:
            handle.write(b"x" * BIG)
        os.replace(path + ".planting", path)
    else:
        os.symlink(link_target, path)

if mode == "swap":
    aside = directory + ".aside"
    os.mkdir(directory, 0o700)
    print("watching", flush=True)
    while time.monotonic() < end:
        try:
            os.rename(directory, aside)
            os.symlink(link_target, directory)
            announce()
            os.unlink(directory)
            os.rename(aside, directory)
        except OSError:
            # Root made the directory in the gap, or raced us: put things back.
            try:
                if os.path.islink(directory):
                    os.unlink(directory)
                if os.path.isdir(aside):
                    if os.path.lexists(directory):
                        shutil.rmtree(aside)
                    else:
                        os.rename(aside, directory)
            except OSError:
                pass
    sys.exit(0)

print("watching", flush=True)
while time.monotonic() < end:
    try:
        names = os.listdir(directory)
    except OSError:
        time.sleep(0.0005)
        continue
    # The token from any name that carries it: the script and the bundle
    # live only until the bootstrap has read them, the claim until the end.
    for name in names:
        if name.startswith("claimed-"):
            tokens.add(name[len("claimed-"):])
        elif name.startswith("bootstrap-"):
            tokens.add(name[len("bootstrap-"):].split(".", 1)[0])
    if mode == "links":
        if tokens:
            os.symlink(link_target, os.path.join(directory, "x"))
            sub = os.path.join(directory, "sub")
            os.mkdir(sub, 0o700)
            os.symlink(link_target, os.path.join(sub, "y"))
            os.symlink(os.path.join(link_target, "notes.txt"), os.path.join(sub, "z"))
            announce()
            break
        time.sleep(0.0005)
        continue
    for token in tokens:
        path = os.path.join(directory, "status." + token)
        if not is_planted(path):
            try:
                os.unlink(path)
            except OSError:
                pass
            try:
                plant(path)
            except OSError:
                continue
            announce()
    time.sleep(0.0005)
"#;

/// An agent whose entry function takes a minute: the bootstrap claims the
/// attach, and writes no status before the deadline.
fn slow_agent() -> AgentFiles {
    AgentFiles {
        files: vec![(
            "slow_agent.py".into(),
            b"import time\n\ndef start(directory, token):\n    time.sleep(60)\n    return {}\n"
                .to_vec(),
        )],
        entry_file: "slow_agent.py".into(),
        entry_function: "start".into(),
    }
}

/// `python`, started as `nobody`: through `setpriv`, or for a chrooted
/// interpreter with `chroot --userspec` (the chroot needs root).
fn as_nobody(python: &Interpreter) -> Interpreter {
    let mut nobody = python.clone();
    let ids = format!("{NOBODY}:{NOBODY}");
    if nobody
        .argv
        .first()
        .is_some_and(|program| program.ends_with("/chroot"))
    {
        nobody.argv.insert(1, format!("--userspec={ids}"));
    } else {
        let mut argv = vec![
            "/usr/bin/setpriv".to_owned(),
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".to_owned(),
        ];
        argv.append(&mut nobody.argv);
        nobody.argv = argv;
    }
    nobody
}

/// Whether `nobody` can run `python` (its files may be under a home only
/// root can enter); the reason when not.
fn nobody_can_run(python: &Interpreter) -> Result<(), String> {
    let output = as_nobody(python)
        .command()
        .args(["-c", "import os; print(os.geteuid())"])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.trim() == NOBODY.to_string() {
        Ok(())
    } else {
        Err(format!(
            "{:?} as nobody: {}{}",
            python.argv,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The interpreters these tests run as `nobody`: one reached by ptrace
/// (Debian's 3.11, which lives outside `/root`), one by PEP 768 (3.14).
/// Each that is missing or that `nobody` cannot run is reported loudly.
fn nobody_interpreters(manifest: &Manifest) -> Vec<&Interpreter> {
    let mut found = Vec::new();
    for id in ["3.11-debian", "3.14"] {
        match manifest.get(id) {
            None => skip_test(&format!(
                "interpreter {id} is not provisioned; it is the one `nobody` can run for this method"
            )),
            Some(python) => match nobody_can_run(python) {
                Ok(()) => found.push(python),
                Err(why) => skip_test(&format!("`nobody` cannot run {id}: {why}")),
            },
        }
    }
    found
}

/// The attacker's interpreter: the first of `pythons` that runs in the
/// host's root (the attacker reaches the target's files through
/// `/proc/PID/root`).
fn attacker_python<'a>(pythons: &[&'a Interpreter]) -> Option<&'a Interpreter> {
    let found = pythons.iter().copied().find(|p| !p.is_chrooted());
    if found.is_none() {
        skip_test("no interpreter that `nobody` can run outside a chroot, for the attacker");
    }
    found
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(name)
}

/// Starts target script `name` with `python` as `nobody`.
fn spawn_as_nobody(python: &Interpreter, name: &str) -> TargetProcess {
    TargetProcess::spawn(&as_nobody(python), &script(name), &[], &[])
        .unwrap_or_else(|e| panic!("{} {name} as nobody: cannot start: {e}", python.id))
}

/// The attacker process, killed when dropped.
struct Attacker {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Attacker {
    /// Starts [`ATTACKER`] as `nobody` and waits until it runs.
    fn start(python: &Interpreter, dir: &Path, mode: &str, link_target: &Path) -> Self {
        let mut child = as_nobody(python)
            .command()
            .arg("-c")
            .arg(ATTACKER)
            .arg(dir)
            .arg(mode)
            .arg(link_target)
            .arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "watching", "the attacker did not start");
        Self { child, stdout }
    }

    /// Whether it planted something (waits for its line up to its end).
    fn planted(mut self) -> bool {
        let _ = self.child.kill();
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim() == "planted"
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A directory only root may enter, holding `notes.txt` (mode 0600) with a
/// secret; removed when dropped.
struct RootOnlyDir {
    path: PathBuf,
    secret: String,
}

impl RootOnlyDir {
    fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/var/tmp/peeka-test-root-only-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        let secret = format!("PEEKA-ROOT-ONLY-SECRET-{}-{n}", std::process::id());
        let notes = path.join("notes.txt");
        fs::write(&notes, &secret).unwrap();
        fs::set_permissions(&notes, fs::Permissions::from_mode(0o600)).unwrap();
        Self { path, secret }
    }

    fn notes(&self) -> PathBuf {
        self.path.join("notes.txt")
    }

    /// Still exactly as made: `notes.txt` alone, root's, with the secret.
    fn assert_untouched(&self, what: &str) {
        let names: Vec<String> = fs::read_dir(&self.path)
            .unwrap_or_else(|e| panic!("{what}: {} is gone: {e}", self.path.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["notes.txt"],
            "{what}: {} was written to",
            self.path.display()
        );
        let meta = fs::symlink_metadata(self.notes()).unwrap();
        assert_eq!(meta.uid(), 0, "{what}: notes.txt changed owner");
        assert_eq!(
            fs::read_to_string(self.notes()).unwrap(),
            self.secret,
            "{what}: notes.txt changed"
        );
    }
}

impl Drop for RootOnlyDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

static PEAK_RSS_KIB: AtomicU64 = AtomicU64::new(0);

/// Samples this process's size every 2 ms into [`PEAK_RSS_KIB`], and
/// aborts the process past [`ABORT_RSS_KIB`] (a read that never ends
/// would otherwise take the machine's memory).
fn watch_memory() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| loop {
            let now = rss_kib();
            PEAK_RSS_KIB.fetch_max(now, Ordering::Relaxed);
            if now > ABORT_RSS_KIB {
                eprintln!("ABORT: the test process grew to {now} KiB reading an untrusted file");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(2));
        });
    });
}

/// What the attacker may leave in the target's `/tmp` (the private
/// directory it kept planting in, the directory it swapped aside): removed
/// when dropped, by path, as the test's own cleanup.
struct Litter(Vec<PathBuf>);

impl Litter {
    /// The private directory of `pid` and its `.aside`, in `python`'s root.
    fn of(python: &Interpreter, pid: u32) -> Self {
        let dir = python.host_path(Path::new(&format!("/tmp/peeka-{pid}")));
        let aside = dir.with_file_name(format!("peeka-{pid}.aside"));
        Self(vec![dir, aside])
    }
}

impl Drop for Litter {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// The private directory of `pid` as `nobody` reaches it.
fn private_dir_via_proc(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root/tmp/peeka-{pid}"))
}

/// Attaches (as root) to a `nobody` target on each interpreter while the
/// attacker keeps `status.<token>` planted as `mode` (a link to
/// `link_target`, if a link), and checks that the attach returns by its
/// deadline with the status file rejected for the reason `expected`
/// accepts, without showing the root-only secret and without growing.
fn assert_planted_status_rejected(
    mode: &str,
    link_target: impl Fn(&RootOnlyDir) -> PathBuf,
    expected: fn(&UntrustedFileError) -> bool,
) {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let pythons = nobody_interpreters(&manifest);
    let Some(attacker) = attacker_python(&pythons) else {
        return;
    };
    watch_memory();
    let secret = RootOnlyDir::new();
    for python in &pythons {
        let what = format!("{} as nobody, status file planted as `{mode}`", python.id);
        let process = spawn_as_nobody(python, "busy.py");
        let pid = process.pid();
        let _litter = Litter::of(python, pid);
        let planter = Attacker::start(
            attacker,
            &private_dir_via_proc(pid),
            mode,
            &link_target(&secret),
        );

        let before = rss_kib();
        PEAK_RSS_KIB.store(before, Ordering::Relaxed);
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut options = AttachOptions::new(slow_agent());
            options.timeout = TIMEOUT;
            let _ = tx.send(attach(pid, &options));
        });
        let result = rx.recv_timeout(TIMEOUT + MARGIN).unwrap_or_else(|_| {
            panic!(
                "{what}: attach() with a {TIMEOUT:?} timeout had not returned after {:?}",
                started.elapsed()
            )
        });
        let took = started.elapsed();
        let growth = PEAK_RSS_KIB.load(Ordering::Relaxed).saturating_sub(before);
        assert!(planter.planted(), "{what}: the attacker planted nothing");

        let error = match result {
            Ok(attached) => panic!("{what}: the attach succeeded: {:?}", attached.status),
            Err(error) => error,
        };
        let text = error.to_string();
        assert!(
            !text.contains(&secret.secret),
            "{what}: the error shows the root-only file: {text}"
        );
        assert!(
            growth < MAX_GROWTH_KIB,
            "{what}: the process grew by {growth} KiB"
        );
        let AttachError::UntrustedStatusFile { path, problem, .. } = &error else {
            panic!("{what}: expected the status file to be rejected, got: {text}");
        };
        assert!(
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("status.")),
            "{what}: {}",
            path.display()
        );
        assert!(expected(problem), "{what}: wrong reason: {text}");
        assert!(
            took >= TIMEOUT && took <= TIMEOUT + MARGIN,
            "{what}: returned after {took:?}"
        );
        eprintln!("{what}: rejected after {took:?}, grew {growth} KiB: {text}");
        drop(process);
    }
}

#[test]
fn a_status_link_to_a_root_only_file_is_never_read() {
    assert_planted_status_rejected("secret", RootOnlyDir::notes, |problem| {
        matches!(problem, UntrustedFileError::Symlink)
    });
}

#[test]
fn a_status_fifo_never_blocks_the_attach() {
    assert_planted_status_rejected(
        "fifo",
        |_| PathBuf::from("-"),
        |problem| matches!(problem, UntrustedFileError::NotRegular { kind } if kind.contains("FIFO")),
    );
}

#[test]
fn a_status_link_to_dev_zero_never_grows_the_client() {
    assert_planted_status_rejected(
        "zero",
        |_| PathBuf::from("/dev/zero"),
        |problem| matches!(problem, UntrustedFileError::Symlink),
    );
}

#[test]
fn a_large_status_file_is_never_read() {
    assert_planted_status_rejected(
        "big",
        |_| PathBuf::from("-"),
        |problem| matches!(problem, UntrustedFileError::TooLarge { .. }),
    );
}

#[test]
fn cleanup_removes_planted_links_never_what_they_point_to() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let pythons = nobody_interpreters(&manifest);
    let Some(attacker) = attacker_python(&pythons) else {
        return;
    };
    for python in &pythons {
        let what = format!(
            "{} as nobody, links planted in the private directory",
            python.id
        );
        let victim = RootOnlyDir::new();
        let process = spawn_as_nobody(python, "busy.py");
        let pid = process.pid();
        let planter = Attacker::start(attacker, &private_dir_via_proc(pid), "links", &victim.path);
        let mut options = AttachOptions::new(slow_agent());
        options.timeout = Duration::from_secs(1);
        let result = attach(pid, &options);
        assert!(planter.planted(), "{what}: the attacker planted nothing");
        assert!(
            matches!(result, Err(AttachError::Timeout { .. })),
            "{what}: {result:?}"
        );
        victim.assert_untouched(&what);
        let host_dir = python.host_path(Path::new(&format!("/tmp/peeka-{pid}")));
        assert!(
            !host_dir.exists(),
            "{what}: {} was left behind",
            host_dir.display()
        );
        eprintln!("{what}: links removed, their targets untouched");
        drop(process);
    }
}

#[test]
fn staging_never_writes_through_a_swapped_private_directory() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let pythons = nobody_interpreters(&manifest);
    let Some(attacker) = attacker_python(&pythons) else {
        return;
    };
    // The agent's file has the victim's file name: staging removes a file
    // of that name before writing it.
    let agent = AgentFiles {
        files: vec![("notes.txt".into(), b"the agent's notes".to_vec())],
        entry_file: "notes.txt".into(),
        entry_function: "start".into(),
    };
    for python in &pythons {
        let what = format!(
            "{} as nobody, private directory swapped for a link",
            python.id
        );
        let victim = RootOnlyDir::new();
        let process = spawn_as_nobody(python, "sleeper.py");
        let pid = process.pid();
        let _litter = Litter::of(python, pid);
        let target = Target::inspect(pid).unwrap_or_else(|e| panic!("{what}: {e}"));
        let swapper = Attacker::start(attacker, &private_dir_via_proc(pid), "swap", &victim.path);
        let (mut staged, mut refused) = (0, 0);
        let mut reasons = std::collections::BTreeMap::new();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            match Staging::prepare(&target, &agent) {
                Ok(staging) => {
                    staged += 1;
                    let _ = staging.status();
                    let _ = staging.claimed();
                    staging.remove_script();
                    staging.remove_all();
                }
                Err(error) => {
                    refused += 1;
                    let reason = error.to_string().replace(&pid.to_string(), "PID");
                    *reasons.entry(reason).or_insert(0) += 1;
                }
            }
        }
        assert!(swapper.planted(), "{what}: the attacker never swapped");
        victim.assert_untouched(&what);
        eprintln!(
            "{what}: {staged} stagings and {refused} refusals ({reasons:?}), nothing written through the link"
        );
        drop(process);
    }
}
