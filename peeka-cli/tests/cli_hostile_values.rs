//! Hostile values must not stall the application (issue 15, part 3),
//! through the real binary on every interpreter of the manifest: the
//! target's request handler gets an object whose `__repr__`, `__str__` and
//! a property sleep one second each (`tests/targets/slow_repr.py`, which
//! times its own calls). `watch -b` must not slow those calls and must
//! show the object from its fields; `--call-repr` brings the `__repr__`
//! back, with its cost, as documented.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{report, run, state_dir, Run};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);
/// The slowest call the application may see while watched (the `__repr__`
/// sleeps 1000 ms): generous, for a loaded machine.
const CALL_BOUND_MS: f64 = 200.0;

fn spawn_slow_repr(python: &Interpreter) -> TargetProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/slow_repr.py");
    TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start slow_repr.py: {e}", python.id))
}

fn observations(run: &Run, id: &str) -> Vec<Value> {
    assert_eq!(
        run.code, 0,
        "{id}: {:#?}\nstderr: {}",
        run.lines, run.stderr
    );
    run.observations().into_iter().cloned().collect()
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

#[test]
fn a_sleeping_repr_does_not_slow_the_watched_call() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let id = &python.id;
        let state = state_dir(&format!("hostile-{id}"));
        let target = spawn_slow_repr(python);
        let pid = target.pid().to_string();
        let attached = run(&state, &["attach", &pid], LIMIT);
        assert_eq!(attached.code, 0, "{id}: attach: {:?}", attached.lines);
        report(&target); // the slowest call is counted from here

        // The default: entry rows captured on the application's thread,
        // exit rows on the writer's; no __repr__, __str__ or property runs.
        let watch = [
            "watch",
            "--pid",
            &pid,
            "__main__.handle",
            "-b",
            "-s",
            "-n",
            "4",
        ];
        let rows = observations(&run(&state, &watch, LIMIT), id);
        let watched = report(&target);
        assert_eq!(rows.len(), 4, "{id}: {rows:#?}");
        let slowest = number(&watched, "slowest_ms");
        assert!(
            slowest < CALL_BOUND_MS,
            "{id}: a watched call took {slowest:.1} ms: {watched}"
        );
        for hook in ["repr_calls", "str_calls", "property_calls"] {
            assert_eq!(watched[hook], 0, "{id}: {hook}: {watched}");
        }
        let entered = &rows[0];
        assert_eq!(entered["location"], "AtEnter", "{id}: {entered}");
        assert_eq!(
            entered["params"][0],
            serde_json::json!({"@type": "__main__.Order", "id": 17, "sku": "plum"}),
            "{id}: the object is shown from its fields"
        );
        let nested = entered["params"][1][0].as_str().unwrap_or_default();
        assert!(
            nested.starts_with("<__main__.Order object at 0x"),
            "{id}: beyond the depth: {nested}"
        );
        let exited = &rows[1];
        assert_eq!(exited["location"], "AtExit", "{id}: {exited}");
        let cost = exited["cost"].as_f64().unwrap();
        assert!(cost < CALL_BOUND_MS, "{id}: the watch's own cost {cost} ms");

        // The opt-in: the __repr__ runs, inside the application's call.
        let opted = [
            "watch",
            "--pid",
            &pid,
            "__main__.handle",
            "-b",
            "-n",
            "1",
            "--call-repr",
        ];
        let rows = observations(&run(&state, &opted, LIMIT), id);
        let paid = report(&target);
        assert_eq!(
            rows[0]["params"][1],
            serde_json::json!(["Order#18(fig)"]),
            "{id}"
        );
        assert_eq!(paid["repr_calls"], 1, "{id}: {paid}");
        let slowest_opted = number(&paid, "slowest_ms");
        assert!(slowest_opted >= 1000.0, "{id}: {paid}");
        eprintln!(
            "{id}: slowest call of handle() while watched with -b: {slowest:.2} ms \
             (--call-repr: {slowest_opted:.1} ms)"
        );
        assert_eq!(
            run(&state, &["detach", "--pid", &pid], LIMIT).code,
            0,
            "{id}: detach"
        );
        assert_eq!(target.stderr(), "", "{id}");
    });
}
