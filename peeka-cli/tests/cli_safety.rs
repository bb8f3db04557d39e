//! What happens to the target when clients misbehave, through the real
//! binary: a watching client killed with SIGKILL, two clients at once with
//! one leaving, a user who is neither root nor the target's owner.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{hot_rate, run, spawn_shop, state_dir, Streaming};
use peeka_testkit::Manifest;

const LIMIT: Duration = Duration::from_secs(30);

/// A client watching a hot function is killed with SIGKILL: within one
/// second its probe is gone and the function runs at its unwatched rate.
#[test]
fn a_killed_client_leaves_no_probe_behind() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let id = &python.id;
        let state = state_dir(&format!("killed-{id}"));
        let target = spawn_shop(python);
        let pid = target.pid().to_string();
        let attached = run(&state, &["attach", &pid], LIMIT);
        assert_eq!(attached.code, 0, "{id}: attach: {:?}", attached.lines);
        let unwatched = hot_rate(&target, Duration::from_millis(500));

        let mut client = Streaming::start(&state, &["watch", "--pid", &pid, "__main__.hot"]);
        assert_eq!(client.observations(100, LIMIT), 100, "{id}: no observations");
        let watched = hot_rate(&target, Duration::from_millis(500));
        client.signal(libc::SIGKILL);
        let killed = Instant::now();
        assert_eq!(client.exit_code(Duration::from_secs(5)), Some(-1), "{id}");

        // The probe is gone within a second.
        let mut probes = usize::MAX;
        while killed.elapsed() < Duration::from_secs(1) {
            let listed = run(&state, &["reset", "--list", "--pid", &pid], LIMIT);
            probes = listed.last()["data"]["probes"].as_array().map_or(usize::MAX, Vec::len);
            if probes == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let gone_after = killed.elapsed();
        assert_eq!(probes, 0, "{id}: the probe outlived its client by {gone_after:?}");
        // A shared machine is noisy: take the best of a few windows.
        let after = (0..3)
            .map(|_| hot_rate(&target, Duration::from_millis(500)))
            .fold(0.0, f64::max);
        eprintln!(
            "{id}: hot() {unwatched:.0}/s unwatched, {watched:.0}/s watched, {after:.0}/s after the \
             client was killed (probe gone after {gone_after:?})"
        );
        // "Back" means close to the unwatched rate (within the noise of a
        // shared machine).
        assert!(after > unwatched * 0.6, "{id}: {after:.0}/s after vs {unwatched:.0}/s before");
        assert_eq!(run(&state, &["detach", "--pid", &pid], LIMIT).code, 0, "{id}: detach");
    });
}

/// Two clients watch two functions; one is killed; the other's stream goes
/// on and ends normally.
#[test]
fn one_client_leaving_does_not_disturb_another() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let id = &python.id;
        let state = state_dir(&format!("two-{id}"));
        let target = spawn_shop(python);
        let pid = target.pid().to_string();
        assert_eq!(
            run(&state, &["attach", &pid], LIMIT).code,
            0,
            "{id}: attach"
        );
        let mut first = Streaming::start(&state, &["watch", "--pid", &pid, "__main__.checkout"]);
        let mut second = Streaming::start(&state, &["watch", "--pid", &pid, "__main__.Cart.total"]);
        assert_eq!(first.observations(3, LIMIT), 3, "{id}: first");
        assert_eq!(second.observations(3, LIMIT), 3, "{id}: second");
        first.signal(libc::SIGKILL);
        assert!(first.exit_code(Duration::from_secs(5)).is_some(), "{id}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            second.observations(20, LIMIT),
            20,
            "{id}: the second stream stopped"
        );
        let listed = run(&state, &["reset", "--list", "--pid", &pid], LIMIT);
        let probes = listed.last()["data"]["probes"].as_array().unwrap().clone();
        assert_eq!(probes.len(), 1, "{id}: {probes:?}");
        assert_eq!(probes[0]["pattern"], "__main__.Cart.total", "{id}");
        second.signal(libc::SIGINT);
        assert_eq!(second.exit_code(Duration::from_secs(10)), Some(0), "{id}");
        assert_eq!(
            run(&state, &["detach", "--pid", &pid], LIMIT).code,
            0,
            "{id}: detach"
        );
        assert_eq!(target.stderr(), "", "{id}");
    });
}

/// The unprivileged account the tests run clients as.
const OTHER_USER: &str = "peeka-test";

fn other_user_uid() -> Option<u32> {
    let ensure = |user: &str| {
        let exists = Command::new("id").arg("-u").arg(user).output().ok()?;
        if !exists.status.success() {
            Command::new("useradd")
                .args(["--no-create-home", "--shell", "/usr/sbin/nologin", user])
                .status()
                .ok()?;
        }
        let out = Command::new("id").arg("-u").arg(user).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    ensure(OTHER_USER)
}

/// A user who is neither root nor the target's owner cannot reach the agent,
/// even knowing the pid; the agent keeps serving its owner.
#[test]
fn another_user_cannot_reach_the_agent() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        peeka_testkit::skip_test("another_user_cannot_reach_the_agent: needs root to switch users");
        return;
    }
    let Some(uid) = other_user_uid() else {
        panic!("cannot create user {OTHER_USER}: useradd failed");
    };
    for minor in ["3.11", "3.14"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let id = &python.id;
        let state = state_dir(&format!("other-{id}"));
        let target = spawn_shop(python);
        let pid = target.pid().to_string();
        assert_eq!(
            run(&state, &["attach", &pid], LIMIT).code,
            0,
            "{id}: attach"
        );
        let other_state = state_dir(&format!("other-user-{id}"));
        std::os::unix::fs::chown(&other_state, Some(uid), Some(uid)).unwrap();
        let mut command = common::command(
            &other_state,
            &["watch", "--pid", &pid, "__main__.checkout", "-n", "1"],
        );
        std::os::unix::process::CommandExt::uid(&mut command, uid);
        std::os::unix::process::CommandExt::gid(&mut command, uid);
        let child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let refused = common::finish(child, LIMIT, &["watch as another user"]);
        assert!(
            refused.code == 4 || refused.code == 3,
            "{id}: another user got in: {:?}",
            refused.lines
        );
        assert!(refused.observations().is_empty(), "{id}");
        eprintln!(
            "{id}: another user was refused: {}",
            refused.last()["error"]
        );
        // The owner is still served.
        let owner = run(
            &state,
            &["watch", "--pid", &pid, "__main__.checkout", "-n", "1"],
            LIMIT,
        );
        assert_eq!(owner.code, 0, "{id}: {:?}", owner.lines);
        assert_eq!(
            run(&state, &["detach", "--pid", &pid], LIMIT).code,
            0,
            "{id}: detach"
        );
    }
}
