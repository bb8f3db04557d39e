//! End to end through the real `peeka-cli` binary, on every interpreter of
//! the manifest: attach, watch (every location flag, -n, -x, conditions),
//! stack, monitor, reset, detach; then the target, asked about itself, has
//! nothing of ours left.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{private_dir, report, run, spawn_shop, state_dir, Run, Streaming};
use peeka_testkit::{Interpreter, Manifest};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

fn ok(run: &Run, what: &str) {
    assert_eq!(
        run.code, 0,
        "{what}: {:#?}\nstderr: {}",
        run.lines, run.stderr
    );
}

fn watch(state: &std::path::Path, pid: &str, extra: &[&str], what: &str) -> Run {
    let mut args = vec!["watch", "--pid", pid];
    args.extend_from_slice(extra);
    let run = run(state, &args, LIMIT);
    ok(&run, what);
    let end = run
        .event("stream_end")
        .unwrap_or_else(|| panic!("{what}: no stream_end"));
    assert_eq!(end["data"]["reason"], "count_reached", "{what}");
    run
}

/// The `reason` of the `stream_end` of a streaming client, which must exit
/// with 0 within a few seconds.
fn end_reason(stream: &mut Streaming, what: &str) -> Value {
    assert_eq!(
        stream.exit_code(Duration::from_secs(10)),
        Some(0),
        "{what}: exit code"
    );
    stream
        .lines()
        .iter()
        .find(|l| l["event"] == "stream_end")
        .map(|l| l["data"]["reason"].clone())
        .unwrap_or_else(|| panic!("{what}: no stream_end"))
}

fn locations(run: &Run) -> Vec<String> {
    run.observations()
        .iter()
        .map(|o| o["location"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn session(python: &Interpreter) {
    let id = &python.id;
    let state = state_dir(&format!("session-{id}"));
    let mut target = spawn_shop(python);
    let before = report(&target);
    let pid_text = target.pid().to_string();
    let pid = pid_text.as_str();

    // attach (remembered), then a second attach reuses the agent.
    let attached = run(&state, &["attach", pid], LIMIT);
    ok(&attached, &format!("{id} attach"));
    let data = &attached.last()["data"];
    assert_eq!(data["reused"], false, "{id}: {data}");
    assert!(data["method"].is_string(), "{id}: {data}");
    let again = run(&state, &["attach", pid], LIMIT);
    ok(&again, &format!("{id} attach again"));
    assert_eq!(again.last()["data"]["reused"], true, "{id}");

    // -f (the default): returns and exceptions, with their values.
    let finish = watch(
        &state,
        pid,
        &["__main__.checkout", "-n", "6"],
        &format!("{id} watch -f"),
    );
    let observations = finish.observations();
    assert_eq!(observations.len(), 6, "{id}");
    for o in &observations {
        assert_eq!(o["func_name"], "__main__.checkout", "{id}: {o}");
        match o["location"].as_str() {
            Some("AtExit") => {
                assert!(o["returnObj"] == 30 || o["returnObj"] == 25, "{id}: {o}");
                assert_eq!(o["success"], true, "{id}: {o}");
            }
            Some("AtExceptionExit") => {
                let thrown = o["throwExp"].as_str().unwrap_or("");
                assert!(thrown.contains("coupon BAD is not valid"), "{id}: {o}");
                assert_eq!(o["success"], false, "{id}: {o}");
            }
            _ => panic!("{id}: unexpected location in {o}"),
        }
        assert!(o["cost"].as_f64().is_some_and(|c| c >= 0.0), "{id}: {o}");
        assert_eq!(o["thread_name"], "MainThread", "{id}: {o}");
    }
    // Other watch fields of the Python implementation are all there.
    for field in ["params", "kwargs", "target", "timestamp", "thread_id"] {
        assert!(observations[0].get(field).is_some(), "{id}: no {field}");
    }
    // The started event names the probed function.
    let started = finish.event("started").unwrap();
    assert_eq!(
        started["data"]["matched"][0]["name"], "__main__.checkout",
        "{id}"
    );

    // -b: entries, no result yet.
    let before_run = watch(
        &state,
        pid,
        &["__main__.checkout", "-b", "-n", "2"],
        &format!("{id} -b"),
    );
    assert_eq!(locations(&before_run), ["AtEnter", "AtEnter"], "{id}");
    assert!(before_run.observations()[0]["returnObj"].is_null(), "{id}");
    // -e: only exceptions.
    let exceptions = watch(
        &state,
        pid,
        &["__main__.checkout", "-e", "-n", "2"],
        &format!("{id} -e"),
    );
    assert_eq!(
        locations(&exceptions),
        ["AtExceptionExit", "AtExceptionExit"],
        "{id}"
    );
    // -s: only returns.
    let successes = watch(
        &state,
        pid,
        &["__main__.checkout", "-s", "-n", "2"],
        &format!("{id} -s"),
    );
    assert_eq!(locations(&successes), ["AtExit", "AtExit"], "{id}");

    // The default instrumentation is code swapping everywhere (on 3.12+
    // with sys.monitoring covering the calls that bypass the function
    // object); sys.monitoring alone can be asked for on 3.12+.
    assert_eq!(
        finish.event("started").unwrap()["data"]["backend"],
        "code_swap",
        "{id}"
    );
    let minor: u32 = python.minor.trim_start_matches("3.").parse().unwrap();
    let other = if minor >= 12 {
        "monitoring"
    } else {
        "code_swap"
    };
    let swapped = watch(
        &state,
        pid,
        &["__main__.checkout", "-s", "-n", "1", "--backend", other],
        &format!("{id} --backend {other}"),
    );
    assert_eq!(
        swapped.event("started").unwrap()["data"]["backend"],
        other,
        "{id}"
    );
    assert_eq!(locations(&swapped), ["AtExit"], "{id}");

    // -x: expansion depth of captured values.
    let shallow = watch(
        &state,
        pid,
        &["__main__.checkout", "-s", "-n", "1", "-x", "0"],
        &format!("{id} -x 0"),
    );
    let deep = watch(
        &state,
        pid,
        &["__main__.checkout", "-s", "-n", "1", "-x", "3"],
        &format!("{id} -x 3"),
    );
    let cart_shallow = &shallow.observations()[0]["params"][0];
    let cart_deep = &deep.observations()[0]["params"][0];
    assert!(
        cart_shallow.is_string(),
        "{id}: -x 0 expanded {cart_shallow}"
    );
    assert_eq!(cart_deep["owner"]["id"], 7, "{id}: -x 3 gave {cart_deep}");

    // A true condition navigating attributes; its observations all match.
    let coupon = watch(
        &state,
        pid,
        &[
            "__main__.checkout",
            "-n",
            "2",
            "--condition",
            "params[0].owner.id == 7 and params[1] == 'SAVE'",
        ],
        &format!("{id} true condition"),
    );
    for o in coupon.observations() {
        assert_eq!(o["returnObj"], 25, "{id}: {o}");
    }
    // A false condition: nothing, and Ctrl-C ends the stream cleanly.
    let mut never = Streaming::start(
        &state,
        &[
            "watch",
            "--pid",
            pid,
            "__main__.checkout",
            "--condition",
            "cost < 0",
        ],
    );
    assert!(
        never.wait_for(LIMIT, |l| l["event"] == "started").is_some(),
        "{id}: no start"
    );
    std::thread::sleep(Duration::from_millis(500));
    never.signal(libc::SIGINT);
    assert_eq!(
        never.exit_code(Duration::from_secs(10)),
        Some(0),
        "{id}: Ctrl-C exit code"
    );
    let lines = never.lines().to_vec();
    assert!(
        !lines.iter().any(|l| l["type"] == "observation"),
        "{id}: {lines:?}"
    );
    let end = lines.iter().find(|l| l["event"] == "stream_end").unwrap();
    assert_eq!(end["data"]["reason"], "interrupted", "{id}");
    // An invalid condition is refused before any probe, with its position.
    let invalid = run(
        &state,
        &[
            "watch",
            "--pid",
            pid,
            "__main__.checkout",
            "--condition",
            "params[0] +",
        ],
        LIMIT,
    );
    assert_eq!(invalid.code, 1, "{id}: {:?}", invalid.lines);
    assert_eq!(invalid.last()["code"], "invalid_expression", "{id}");
    // A pattern that matches nothing lists close matches.
    let missing = run(&state, &["watch", "--pid", pid, "__main__.chekout"], LIMIT);
    assert_eq!(missing.code, 1, "{id}: {:?}", missing.lines);
    assert_eq!(missing.last()["code"], "not_found", "{id}");
    assert!(
        missing.last()["error"]
            .as_str()
            .unwrap()
            .contains("__main__.checkout"),
        "{id}"
    );

    // Hostile values: placeholders in the observation, the target unharmed.
    // By default no __repr__ runs; with --call-repr they run, guarded.
    let hostile = watch(
        &state,
        pid,
        &["__main__.handle_hostile", "-n", "1", "-x", "4"],
        &format!("{id} hostile"),
    );
    let observation = &hostile.observations()[0];
    assert_eq!(observation["returnObj"], 6, "{id}");
    let rendered = observation["params"].to_string();
    assert!(
        rendered.contains("<__main__.RaisingRepr object at 0x")
            && rendered.contains("<__main__.HugeRepr object at 0x")
            && !rendered.contains("repr failed"),
        "{id}: {rendered:.300}"
    );
    assert!(rendered.len() < 70_000, "{id}: {} bytes", rendered.len());
    let guarded = watch(
        &state,
        pid,
        &[
            "__main__.handle_hostile",
            "-n",
            "1",
            "-x",
            "4",
            "--call-repr",
        ],
        &format!("{id} hostile, --call-repr"),
    );
    let observation = &guarded.observations()[0];
    assert_eq!(observation["returnObj"], 6, "{id}");
    let rendered = observation["params"].to_string();
    assert!(
        rendered.contains("repr failed: RuntimeError") && rendered.contains("<truncated, "),
        "{id}: {rendered:.300}"
    );
    assert!(rendered.len() < 70_000, "{id}: {} bytes", rendered.len());

    // stack: the callers of Cart.total, innermost first.
    let stack = run(
        &state,
        &["stack", "--pid", pid, "__main__.Cart.total", "-n", "1"],
        LIMIT,
    );
    ok(&stack, &format!("{id} stack"));
    let frames = &stack.observations()[0]["stack"];
    assert_eq!(frames[0]["function"], "checkout", "{id}: {frames}");
    assert_eq!(frames[1]["function"], "<module>", "{id}: {frames}");

    // monitor: two cycles, with the known failures.
    let monitor = run(
        &state,
        &[
            "monitor",
            "--pid",
            pid,
            "__main__.checkout",
            "--interval",
            "0.5",
            "-c",
            "2",
        ],
        LIMIT,
    );
    ok(&monitor, &format!("{id} monitor"));
    let reports = monitor.observations();
    assert_eq!(reports.len(), 2, "{id}: {reports:?}");
    for r in &reports {
        let total = r["total"].as_u64().unwrap();
        let parts = r["success"].as_u64().unwrap() + r["fail"].as_u64().unwrap();
        assert_eq!(total, parts, "{id}: {r}");
        let (p50, p99) = (r["rt_p50"].as_f64().unwrap(), r["rt_p99"].as_f64().unwrap());
        assert!(p99 >= p50, "{id}: {r}");
    }
    // A loaded machine can starve the target for a whole short cycle; over
    // both, the calls and the known failures (coupon BAD) are there.
    let total: u64 = reports.iter().map(|r| r["total"].as_u64().unwrap()).sum();
    let fail: u64 = reports.iter().map(|r| r["fail"].as_u64().unwrap()).sum();
    assert!(total > 0 && fail > 0, "{id}: {reports:?}");
    assert_eq!(reports[1]["cycle"], 2, "{id}");

    // reset: a running watch is listed, then removed; its client ends.
    let mut running = Streaming::start(&state, &["watch", "--pid", pid, "__main__.checkout"]);
    assert!(
        running.observations(1, LIMIT) == 1,
        "{id}: the watch never observed"
    );
    let listed = run(&state, &["reset", "--list"], LIMIT);
    ok(&listed, &format!("{id} reset --list"));
    assert_eq!(
        listed.last()["data"]["probes"].as_array().unwrap().len(),
        1,
        "{id}: {:?}",
        listed.lines
    );
    let reset = run(&state, &["reset"], LIMIT);
    ok(&reset, &format!("{id} reset"));
    assert_eq!(reset.last()["data"]["removed"], 1, "{id}");
    assert_eq!(
        end_reason(&mut running, &format!("{id}: watch after reset")),
        "reset"
    );

    // detach (the remembered target), then nothing of ours is left.
    let detached = run(&state, &["detach"], LIMIT);
    ok(&detached, &format!("{id} detach"));
    // The thread that answered `detach` ends right after its answer: give
    // the agent's threads a moment (bounded) to be gone.
    let mut after = report(&target);
    let settle = std::time::Instant::now();
    while after["threads"] != before["threads"] && settle.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        after = report(&target);
    }
    assert_eq!(
        after["codes_same"],
        serde_json::json!([true, true, true, true]),
        "{id}"
    );
    assert_eq!(
        after["functions_same"],
        serde_json::json!([true, true, true, true]),
        "{id}"
    );
    assert_eq!(
        after["tool_ids"], before["tool_ids"],
        "{id}: a monitoring tool id is still taken"
    );
    assert_eq!(after["threads"], before["threads"], "{id}: threads left");
    assert_eq!(after["modules"], Value::Array(vec![]), "{id}: modules left");
    // Not even a name in `__main__` (such as the `__warningregistry__` an
    // unclosed file's warning would create while the bootstrap runs).
    assert_eq!(
        after["main_globals"], before["main_globals"],
        "{id}: names left in __main__"
    );
    assert_eq!(
        after["errors"],
        Value::Array(vec![]),
        "{id}: the target's results changed"
    );
    assert_eq!(after["hostile_results"], serde_json::json!([6]), "{id}");
    let dir = private_dir(python, &target);
    assert!(!dir.exists(), "{id}: {} is still there", dir.display());
    assert!(target.is_alive(), "{id}: the target died");
    assert_eq!(target.stderr(), "", "{id}: the target printed errors");
    // With the agent gone, the remembered target is forgotten.
    let gone = run(&state, &["reset", "--list"], LIMIT);
    assert_eq!(gone.code, 3, "{id}: {:?}", gone.lines);
    eprintln!("{id}: the whole session passed");
}

/// `--send-budget` (`watch`, `stack`, `trace`): out of 1-50 it is a usage
/// error before anything is touched; in range it reaches the agent, which
/// shows it among the stream's labels (`info`) while the stream runs. On
/// one interpreter: the agent's side is tested on every version by its own
/// tests.
#[test]
fn send_budget_is_refused_out_of_range_and_sent_in_range() {
    // Refused by the command line, before any process is looked for: no
    // target is remembered and the pid is not a process.
    let state = state_dir("send-budget");
    for (command, percent) in [("watch", "51"), ("stack", "0"), ("trace", "51")] {
        let refused = run(
            &state,
            &[
                command,
                "--pid",
                "999999999",
                "m.f",
                "--send-budget",
                percent,
            ],
            LIMIT,
        );
        assert_eq!(refused.code, 2, "{command} {percent}: {refused:?}");
        assert!(refused.lines.is_empty(), "{command}: {refused:?}");
        assert!(
            refused.stderr.contains("from 1 to 50"),
            "{command}: {}",
            refused.stderr
        );
    }
    // `run` parses its probe command before it starts the program.
    let refused = run(
        &state,
        &[
            "run",
            "no-such-script.py",
            "--",
            "watch",
            "__main__.f",
            "--send-budget",
            "51",
        ],
        LIMIT,
    );
    assert_eq!(refused.code, 2, "run: {refused:?}");
    assert!(
        refused.last()["error"]
            .as_str()
            .is_some_and(|e| e.contains("from 1 to 50")),
        "run: {refused:?}"
    );

    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.12") else {
        return;
    };
    let id = &python.id;
    let target = spawn_shop(python);
    let pid_text = target.pid().to_string();
    let pid = pid_text.as_str();
    let once = watch(
        &state,
        pid,
        &["__main__.checkout", "-n", "1", "--send-budget", "30"],
        &format!("{id} watch --send-budget 30"),
    );
    assert_eq!(once.observations().len(), 1, "{id}");

    // A flood (hot() runs in a tight loop): the stream runs with its share,
    // which the agent shows among the stream's labels.
    let mut flood = Streaming::start(
        &state,
        &[
            "watch",
            "--pid",
            pid,
            "__main__.hot",
            "-s",
            "--send-budget",
            "30",
        ],
    );
    assert_eq!(
        flood.observations(3, LIMIT),
        3,
        "{id}: the flood never came"
    );
    let session = peeka_core::client::Session::connect(target.pid()).unwrap();
    let info = session.info().unwrap();
    let stream = info
        .streams
        .iter()
        .find(|s| s.command == "watch" && s.labels["pattern"] == "__main__.hot")
        .unwrap_or_else(|| panic!("{id}: no watch stream in {:?}", info.streams));
    assert_eq!(
        stream.labels["send_budget"], 30,
        "{id}: {:?}",
        stream.labels
    );
    drop(session);
    let listed = run(&state, &["reset", "--list", "--pid", pid], LIMIT);
    ok(&listed, &format!("{id} reset --list"));
    let probes = listed.last()["data"]["probes"].as_array().unwrap().clone();
    assert_eq!(probes.len(), 1, "{id}: {probes:?}");
    assert_eq!(probes[0]["pattern"], "__main__.hot", "{id}: {probes:?}");

    ok(
        &run(&state, &["detach", "--pid", pid], LIMIT),
        &format!("{id} detach"),
    );
    assert_eq!(
        end_reason(&mut flood, &format!("{id}: the watch after detach")),
        "detached"
    );
}

#[test]
fn the_whole_session_on_every_interpreter() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(session);
}
