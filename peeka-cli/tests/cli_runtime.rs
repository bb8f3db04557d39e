//! End to end through the real `peeka-cli` binary, on every interpreter of
//! the manifest: sc, sm, inspect, logger and memory against a target whose
//! truth is known (`tests/targets/warehouse.py`), in JSON Lines and text;
//! bad input fails with the fix and changes nothing; after detach the
//! tracing Peeka started is off and nothing of ours is left.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{private_dir, run, state_dir, Run};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

fn ok(run: &Run, what: &str) -> Value {
    assert_eq!(
        run.code, 0,
        "{what}: {:#?}\nstderr: {}",
        run.lines, run.stderr
    );
    run.last()["data"].clone()
}

fn failed(run: &Run, code: &str, what: &str) -> String {
    assert_eq!(run.code, 1, "{what}: {:#?}", run.lines);
    let last = run.last();
    assert_eq!(last["type"], "error", "{what}: {last}");
    assert_eq!(last["code"], code, "{what}: {last}");
    last["error"].as_str().unwrap_or("").to_owned()
}

fn spawn_warehouse(python: &Interpreter) -> TargetProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/warehouse.py");
    TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start warehouse.py: {e}", python.id))
}

fn report(target: &TargetProcess) -> Value {
    let path = target.host_dir().join("warehouse-report.json");
    let _ = fs::remove_file(&path);
    // SAFETY: kill(2) on the target's pid.
    unsafe {
        libc::kill(target.pid() as i32, libc::SIGUSR1);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(&path) {
            if let Ok(value) = serde_json::from_str(&text) {
                return value;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the target did not report; stderr: {}", target.stderr());
}

fn leak_line() -> u64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/warehouse.py");
    let text = fs::read_to_string(script).unwrap();
    let index = text
        .lines()
        .position(|l| l.contains("# LEAK-LINE"))
        .unwrap();
    index as u64 + 1
}

fn session(python: &Interpreter) {
    let id = &python.id;
    let state = state_dir(&format!("runtime-{id}"));
    let mut target = spawn_warehouse(python);
    let before = report(&target);
    let pid_text = target.pid().to_string();
    let pid = pid_text.as_str();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--pid", pid]);
        run(&state, &all, LIMIT)
    };
    let text = |args: &[&str]| {
        let mut all = vec!["--format", "text"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--pid", pid]);
        let child = common::command(&state, &all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(child.status.success(), "{id} {args:?}: {child:?}");
        String::from_utf8_lossy(&child.stdout).into_owned()
    };
    ok(
        &run(&state, &["attach", pid], LIMIT),
        &format!("{id} attach"),
    );

    // sc: the classes of __main__, and one in detail.
    let classes = ok(&cli(&["sc", "__main__.*"]), &format!("{id} sc"));
    let names: Vec<&str> = classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in ["__main__.Item", "__main__.Settings", "__main__.Warehouse"] {
        assert!(names.contains(&name), "{id}: {names:?}");
    }
    let item = ok(
        &cli(&["sc", "-d", "Item", "--limit", "5"]),
        &format!("{id} sc -d"),
    );
    let detail = item["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "__main__.Item")
        .unwrap_or_else(|| panic!("{id}: {item}"));
    assert_eq!(detail["bases"], serde_json::json!(["object"]), "{id}");
    assert!(
        detail["file"].as_str().unwrap().ends_with("warehouse.py"),
        "{id}"
    );
    assert_eq!(
        detail["methods"],
        serde_json::json!(["__init__", "expensive", "total"]),
        "{id}"
    );
    assert!(
        text(&["sc", "__main__.Ware*"]).contains("__main__.Warehouse"),
        "{id}"
    );

    // sm: methods with signatures.
    let methods = ok(
        &cli(&["sm", "__main__.Item", "-d", "--method-pattern", "t*"]),
        &format!("{id} sm"),
    );
    let total = &methods["methods"][0];
    assert_eq!(total["name"], "total", "{id}: {methods}");
    assert_eq!(total["signature"], "(self, price, discount=0)", "{id}");
    assert_eq!(total["kind"], "method", "{id}");
    assert!(
        text(&["sm", "__main__.Item", "-d"]).contains("(self, price, discount=0)"),
        "{id}"
    );

    // inspect: a known nested value; instances with a filter; a count.
    let host = ok(
        &cli(&["inspect", "--target", "__main__.SETTINGS.db['hosts'][1]"]),
        &format!("{id} inspect get"),
    );
    assert_eq!(host["value"], "db2", "{id}: {host}");
    let warehouse = ok(
        &cli(&["inspect", "--target", "__main__.WAREHOUSE", "--depth", "3"]),
        &format!("{id} inspect deep"),
    );
    assert_eq!(
        warehouse["value"]["items"][1]["qty"], 12,
        "{id}: {warehouse}"
    );
    let big = ok(
        &cli(&[
            "inspect",
            "--action",
            "instances",
            "--type",
            "__main__.Item",
            "--filter-express",
            "obj.qty > 10",
        ]),
        &format!("{id} instances"),
    );
    assert_eq!(big["matched"], 1, "{id}: {big}");
    assert_eq!(big["instances"][0]["value"]["sku"], "A-2", "{id}");
    let count = ok(
        &cli(&["inspect", "--action", "count", "--type", "__main__.Item"]),
        &format!("{id} count"),
    );
    assert_eq!(count["count"], 3, "{id}: {count}");
    assert!(
        text(&["inspect", "--target", "__main__.SETTINGS.db"]).contains("5432"),
        "{id}"
    );
    // Bad input: the fix is named, nothing runs.
    let property = failed(
        &cli(&[
            "inspect",
            "--target",
            "__main__.WAREHOUSE.items[0].expensive",
        ]),
        "not_found",
        &format!("{id} property"),
    );
    assert!(property.contains("property"), "{id}: {property}");
    failed(
        &cli(&[
            "inspect",
            "--action",
            "count",
            "--type",
            "__main__.Item",
            "--filter-express",
            "obj.qty >",
        ]),
        "invalid_expression",
        &format!("{id} bad filter"),
    );
    let unknown = failed(
        &cli(&["inspect", "--action", "count", "--type", "__main__.Itme"]),
        "not_found",
        &format!("{id} unknown type"),
    );
    assert!(unknown.contains("__main__.Item"), "{id}: {unknown}");
    let usage = cli(&["inspect", "--action", "get", "--type", "x", "--target", "y"]);
    assert_eq!(usage.code, 2, "{id}: {:?}", usage.lines);

    // logger: the program logs INFO only once Peeka sets the level.
    let audit = ok(
        &cli(&["logger", "--action", "get", "--logger", "warehouse.audit"]),
        &format!("{id} logger get"),
    );
    assert_eq!(audit["level_name"], "WARNING", "{id}: {audit}");
    assert_eq!(
        audit["handlers"][0]["type"], "__main__.CountingHandler",
        "{id}"
    );
    let listed = ok(
        &cli(&["logger", "--pattern", "warehouse.*"]),
        &format!("{id} logger list"),
    );
    assert_eq!(
        listed["loggers"][0]["name"], "warehouse.audit",
        "{id}: {listed}"
    );
    let bad_level = failed(
        &cli(&[
            "logger",
            "--action",
            "set",
            "--logger",
            "warehouse.audit",
            "--level",
            "LOUD",
        ]),
        "invalid_params",
        &format!("{id} bad level"),
    );
    assert!(bad_level.contains("DEBUG"), "{id}: {bad_level}");
    failed(
        &cli(&["logger", "--action", "get", "--logger", "warehouse.audti"]),
        "not_found",
        &format!("{id} unknown logger"),
    );
    let quiet = report(&target);
    assert_eq!(quiet["info_records"], 0, "{id}: {quiet}");
    let change = ok(
        &cli(&[
            "logger",
            "--action",
            "set",
            "--logger",
            "warehouse.audit",
            "--level",
            "info",
        ]),
        &format!("{id} logger set"),
    );
    assert_eq!(change["previous_level_name"], "WARNING", "{id}: {change}");
    assert_eq!(change["level_name"], "INFO", "{id}");
    std::thread::sleep(Duration::from_millis(300));
    let loud = report(&target);
    assert!(loud["info_records"].as_u64().unwrap() > 0, "{id}: {loud}");
    assert!(
        text(&["logger", "--action", "get", "--logger", "warehouse.audit"]).contains("INFO"),
        "{id}"
    );

    // memory: overview, tracing that points at the leaking line, gc,
    // referrers, a dump.
    let overview = ok(&cli(&["memory"]), &format!("{id} memory overview"));
    assert!(overview["rss_bytes"].as_u64().unwrap() > 1 << 20, "{id}");
    assert!(!overview["types"].as_array().unwrap().is_empty(), "{id}");
    let early = failed(
        &cli(&["memory", "--action", "top"]),
        "invalid_state",
        &format!("{id} top before start"),
    );
    assert!(early.contains("--action start"), "{id}: {early}");
    assert_eq!(
        report(&target)["tracing"],
        false,
        "{id}: the failed top started tracing"
    );
    let started = ok(
        &cli(&["memory", "--action", "start", "--nframe", "5"]),
        &format!("{id} start"),
    );
    assert_eq!(started["started_by"], "peeka", "{id}");
    ok(
        &cli(&["memory", "--action", "snapshot"]),
        &format!("{id} snapshot"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let diff = ok(
        &cli(&["memory", "--action", "diff", "--limit", "5"]),
        &format!("{id} diff"),
    );
    let first = &diff["stats"][0];
    assert!(
        first["filename"]
            .as_str()
            .unwrap()
            .ends_with("warehouse.py"),
        "{id}: {diff}"
    );
    assert_eq!(first["lineno"], leak_line(), "{id}: {diff}");
    assert!(
        first["size_diff"].as_i64().unwrap() > 50_000,
        "{id}: {first}"
    );
    let top = text(&["memory", "--action", "top", "--limit", "5"]);
    assert!(
        top.contains(&format!("warehouse.py:{}", leak_line())),
        "{id}: {top}"
    );
    let gc = ok(&cli(&["memory", "--action", "gc"]), &format!("{id} gc"));
    assert!(gc["collected"].is_u64(), "{id}: {gc}");
    let refs = ok(
        &cli(&[
            "memory",
            "--action",
            "referrers",
            "--type-name",
            "__main__.Warehouse",
            "--max-depth",
            "2",
        ]),
        &format!("{id} referrers"),
    );
    assert_eq!(refs["instances"], 1, "{id}: {refs}");
    let rendered = refs["roots"].to_string();
    assert!(
        rendered.contains("globals of module __main__") && rendered.contains("WAREHOUSE"),
        "{id}: {rendered}"
    );
    let dump_path = target.target_dir().join("heap.jsonl");
    let dump = ok(
        &cli(&[
            "memory",
            "--action",
            "dump",
            "--filename",
            dump_path.to_str().unwrap(),
        ]),
        &format!("{id} dump"),
    );
    assert!(dump["objects"].as_u64().unwrap() > 1000, "{id}: {dump}");
    let written = fs::read_to_string(target.host_dir().join("heap.jsonl")).unwrap();
    let first_line: Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert_eq!(first_line["kind"], "summary", "{id}");
    failed(
        &cli(&[
            "memory",
            "--action",
            "dump",
            "--filename",
            dump_path.to_str().unwrap(),
        ]),
        "invalid_params",
        &format!("{id} dump again"),
    );

    // detach: the tracing Peeka started is off; the level Peeka set stays.
    ok(
        &run(&state, &["detach", "--pid", pid], LIMIT),
        &format!("{id} detach"),
    );
    // The thread that served `detach` ends just after answering.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut after = report(&target);
    while after["threads"] != before["threads"] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = report(&target);
    }
    assert_eq!(after["tracing"], false, "{id}: tracemalloc left on");
    assert_eq!(after["audit_level"], 20, "{id}: the level set should stay");
    assert_eq!(after["threads"], before["threads"], "{id}: threads left");
    assert_eq!(after["modules"], Value::Array(vec![]), "{id}: modules left");
    assert_eq!(
        after["errors"],
        Value::Array(vec![]),
        "{id}: results changed"
    );
    assert!(
        !private_dir(python, &target).exists(),
        "{id}: private dir left"
    );
    assert!(target.is_alive(), "{id}: the target died");
    assert_eq!(target.stderr(), "", "{id}: the target printed errors");
    eprintln!("{id}: the runtime commands passed");
}

#[test]
fn runtime_commands_on_every_interpreter() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(session);
}
