//! `trace`, `thread` and `top` end to end through the real `peeka-cli`
//! binary, on every interpreter of the manifest, against a target whose
//! truth is known (`tests/targets/busy.py`): the known children of a
//! traced function with their counts, the known threads with the busy one
//! first, the known hot function above 80% of the samples, bad input
//! refused with the fix, and nothing of ours left after detach.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{report, run, state_dir, Run};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

fn spawn_busy(python: &Interpreter) -> TargetProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/busy.py");
    TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start busy.py: {e}", python.id))
}

fn ok(run: &Run, what: &str) {
    assert_eq!(
        run.code, 0,
        "{what}: {:#?}\nstderr: {}",
        run.lines, run.stderr
    );
}

fn failed_with(run: &Run, code: &str, what: &str) {
    assert_eq!(run.code, 1, "{what}: {:#?}", run.lines);
    assert_eq!(run.last()["code"], code, "{what}: {:#?}", run.lines);
}

/// `function -> count` of a trace node's children.
fn children(node: &Value) -> BTreeMap<String, u64> {
    node["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["function"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn thread_names(result: &Value) -> Vec<String> {
    result["data"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn diagnostics(python: &Interpreter) {
    let id = &python.id;
    let state = state_dir(&format!("diagnostics-{id}"));
    let mut target = spawn_busy(python);
    let before = report(&target);
    let pid_text = target.pid().to_string();
    let pid = pid_text.as_str();
    ok(
        &run(&state, &["attach", pid], LIMIT),
        &format!("{id} attach"),
    );

    // thread: the known threads, the agent's hidden.
    let listed = run(&state, &["thread"], LIMIT);
    ok(&listed, &format!("{id} thread"));
    let result = listed.last();
    let names = thread_names(result);
    for name in ["MainThread", "burner", "idle-waiter", "sleeper"] {
        assert!(
            names.contains(&name.to_owned()),
            "{id}: {name} not in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("peeka-")),
        "{id}: {names:?}"
    );
    assert!(
        result["data"]["hidden_agent_threads"].as_u64().unwrap() > 0,
        "{id}"
    );
    let threads = result["data"]["threads"].as_array().unwrap();
    let idle = threads.iter().find(|t| t["name"] == "idle-waiter").unwrap();
    assert_eq!(idle["state"], "WAITING", "{id}: {idle}");
    assert_eq!(idle["daemon"], true, "{id}: {idle}");
    assert!(idle["native_id"].as_u64().is_some(), "{id}: {idle}");
    let burner = threads.iter().find(|t| t["name"] == "burner").unwrap();
    assert!(burner["cpu_time"].as_f64().unwrap() > 0.0, "{id}: {burner}");

    // thread -n 1: the busy thread first, with its stack.
    let busiest = run(&state, &["thread", "-n", "1", "-i", "300"], LIMIT);
    ok(&busiest, &format!("{id} thread -n 1"));
    let top_thread = &busiest.last()["data"]["threads"][0];
    assert_eq!(top_thread["name"], "burner", "{id}: {:?}", busiest.lines);
    assert_eq!(
        top_thread["stack"][0]["function"], "burn",
        "{id}: {top_thread}"
    );

    // thread --tid: one thread's stack, depth-limited; an unknown id is refused.
    let tid = idle["tid"].as_u64().unwrap().to_string();
    let detail = run(&state, &["thread", "--tid", &tid, "--depth", "2"], LIMIT);
    ok(&detail, &format!("{id} thread --tid"));
    let thread = &detail.last()["data"]["thread"];
    assert_eq!(thread["name"], "idle-waiter", "{id}");
    assert_eq!(
        thread["stack"].as_array().unwrap().len(),
        2,
        "{id}: {thread}"
    );
    let bad = run(&state, &["thread", "--tid", "1"], LIMIT);
    failed_with(&bad, "not_found", &format!("{id} thread --tid 1"));
    assert!(
        bad.last()["error"]
            .as_str()
            .unwrap()
            .contains("peeka-cli thread"),
        "{id}: the error names the fix"
    );

    // trace: exactly the known children with their counts.
    let traced = run(&state, &["trace", "__main__.order", "-n", "2"], LIMIT);
    ok(&traced, &format!("{id} trace"));
    let trees = traced.observations();
    assert_eq!(trees.len(), 2, "{id}: {:?}", traced.lines);
    let expected: BTreeMap<String, u64> = [
        ("__main__.validate".to_owned(), 1),
        ("__main__.price".to_owned(), 3),
        ("__main__.save".to_owned(), 1),
    ]
    .into();
    for tree in &trees {
        let root = &tree["call_tree"];
        assert_eq!(root["function"], "__main__.order", "{id}: {tree}");
        assert_eq!(children(root), expected, "{id}: {tree}");
        assert_eq!(tree["thread_name"], "MainThread", "{id}");
        // The standard library (json.dumps under save) is left out by default.
        let save = &root["children"][2];
        assert_eq!(save["children"], json!([]), "{id}: {save}");
    }
    // --skip-builtin=false shows json.dumps under save.
    let full = run(
        &state,
        &["trace", "__main__.order", "-n", "1", "--skip-builtin=false"],
        LIMIT,
    );
    ok(&full, &format!("{id} trace --skip-builtin=false"));
    let save = &full.observations()[0]["call_tree"]["children"][2];
    assert!(children(save).contains_key("json.dumps"), "{id}: {save}");
    // A condition on cost that nothing meets, with -n: nothing, Ctrl-C-free
    // bound by the test's limit through a true condition instead.
    let conditioned = run(
        &state,
        &[
            "trace",
            "__main__.order",
            "-n",
            "1",
            "--condition",
            "len(params[0]) == 3 and cost >= 0",
        ],
        LIMIT,
    );
    ok(&conditioned, &format!("{id} trace --condition"));
    // Bad input: refused with the fix, nothing installed.
    let missing = run(&state, &["trace", "__main__.ordr"], LIMIT);
    failed_with(&missing, "not_found", &format!("{id} trace unknown"));
    assert!(
        missing.last()["error"]
            .as_str()
            .unwrap()
            .contains("__main__.order"),
        "{id}: close matches"
    );
    let invalid = run(
        &state,
        &["trace", "__main__.order", "--condition", "params["],
        LIMIT,
    );
    failed_with(
        &invalid,
        "invalid_expression",
        &format!("{id} trace bad condition"),
    );
    let probes = run(&state, &["reset", "--list"], LIMIT);
    assert_eq!(
        probes.last()["data"]["probes"],
        json!([]),
        "{id}: a probe was left"
    );

    // top: the hot function above 80% of the samples; collapsed stacks and
    // a flame graph written by the client.
    let collapsed = state.join("top.collapsed");
    let svg = state.join("top.svg");
    let sampled = run(
        &state,
        &[
            "top",
            "-c",
            "2",
            "--report-interval",
            "0.5",
            "--collapsed",
            collapsed.to_str().unwrap(),
            "--flamegraph",
            svg.to_str().unwrap(),
        ],
        LIMIT,
    );
    ok(&sampled, &format!("{id} top"));
    let snapshots = sampled.observations();
    assert_eq!(snapshots.len(), 2, "{id}: {:?}", sampled.lines);
    let last = snapshots[1];
    let hot = &last["functions"][0];
    assert_eq!(hot["name"], "__main__.burn", "{id}: {last}");
    assert!(hot["own_pct"].as_f64().unwrap() > 80.0, "{id}: {hot}");
    let own_sum: f64 = last["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["own_pct"].as_f64().unwrap())
        .sum();
    assert!(own_sum <= 100.01, "{id}: own shares add up to {own_sum}");
    let text = std::fs::read_to_string(&collapsed).unwrap();
    let samples: u64 = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        samples,
        last["total_samples"].as_u64().unwrap(),
        "{id}: {text}"
    );
    assert!(text.contains(";__main__.burn "), "{id}: {text}");
    let image = std::fs::read_to_string(&svg).unwrap();
    assert!(
        image.starts_with("<?xml") && image.contains("__main__.burn"),
        "{id}"
    );
    let written = sampled.of_type("success").last().unwrap();
    assert_eq!(written["data"]["samples"], samples, "{id}");

    // detach: nothing of ours left, the target's results unchanged.
    ok(&run(&state, &["detach"], LIMIT), &format!("{id} detach"));
    // The agent's threads end shortly after the answer to detach.
    let mut after = report(&target);
    for _ in 0..100 {
        if after["threads"] == before["threads"] {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        after = report(&target);
    }
    assert_eq!(
        after["codes_same"],
        json!([true, true, true, true, true]),
        "{id}"
    );
    assert_eq!(
        after["tool_ids"], before["tool_ids"],
        "{id}: a tool id is taken"
    );
    assert_eq!(
        after["profile"], "None",
        "{id}: a profile function was left"
    );
    assert_eq!(after["threads"], before["threads"], "{id}: threads left");
    assert_eq!(after["modules"], json!([]), "{id}: modules left");
    assert_eq!(
        after["errors"],
        json!([]),
        "{id}: the target's results changed"
    );
    assert!(target.is_alive(), "{id}: the target died");
    assert_eq!(target.stderr(), "", "{id}: the target printed errors");
    eprintln!("{id}: trace, thread and top passed");
}

#[test]
fn trace_thread_and_top_on_every_interpreter() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(diagnostics);
}
