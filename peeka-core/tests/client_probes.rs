//! The probe commands end to end through the typed client, on every
//! interpreter: `watch` (exits, exceptions, entries, methods, conditions,
//! errors), `stack`, `monitor`, `reset`, and several probe streams at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{attach, on_every_interpreter, spawn_service};
use peeka_core::client::{
    EndReason, ErrorCode, Location, MonitorRequest, ResetRequest, Session, StackRequest,
    StreamItem, Subscription, WatchRequest,
};
use peeka_testkit::Interpreter;
use serde::de::DeserializeOwned;

/// Every observation of a subscription that ends by itself; fails on any
/// error item or when it does not end within 20 s.
fn collect<T: DeserializeOwned>(mut subscription: Subscription<T>, what: &str) -> Vec<T> {
    let mut items = Vec::new();
    loop {
        match subscription.next_timeout(Duration::from_secs(20)) {
            None => break,
            Some(Ok(StreamItem::Observation { data, .. })) => items.push(data),
            Some(Ok(StreamItem::Event { kind, data, .. })) => {
                panic!("{what}: unexpected event {kind}: {data}")
            }
            Some(Err(e)) => panic!("{what}: {e}"),
        }
    }
    let end = subscription.end().unwrap();
    assert_eq!(end.reason, EndReason::CountReached, "{what}: {end:?}");
    items
}

fn probes(python: &Interpreter) {
    let id = python.id.as_str();
    let process = spawn_service(python, &[]);
    let (session, _) = attach(python, &process);

    // Errors come typed, before anything is installed.
    let error = session
        .watch(&WatchRequest::new("__main__.wrok"))
        .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::NotFound), "{id}: {error}");
    assert!(
        error.to_string().contains("__main__.work"),
        "{id}: no close match in {error}"
    );
    let error = session
        .watch(&WatchRequest::new("__main__.work").condition("cost >"))
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::InvalidExpression),
        "{id}: {error}"
    );

    // Normal exits.
    let watch = session
        .watch(&WatchRequest::new("__main__.work").success(true).times(5))
        .unwrap();
    let started = watch.started().clone();
    assert_eq!(started.matched.len(), 1, "{id}: {started:?}");
    assert_eq!(started.matched[0].name, "__main__.work", "{id}");
    assert!(started.backend.is_some(), "{id}: {started:?}");
    let calls = collect(watch, &format!("{id} watch"));
    assert_eq!(calls.len(), 5, "{id}");
    for call in &calls {
        assert_eq!(call.func_name, "__main__.work", "{id}");
        assert_eq!(call.location, Location::AtExit, "{id}");
        assert_eq!(call.success, Some(true), "{id}");
        assert!(call.cost.unwrap() >= 0.0, "{id}");
        assert!(call.timestamp > 1.0e9, "{id}");
        assert_eq!(call.thread_name, "MainThread", "{id}");
        let n = call.params[0].as_u64().unwrap();
        assert_eq!(call.return_obj.as_u64(), Some(2 * n), "{id}: {call:?}");
    }
    // Printed back, an observation has the wire's field names.
    let printed = serde_json::to_value(&calls[0]).unwrap();
    for field in [
        "func_name",
        "location",
        "returnObj",
        "throwExp",
        "thread_id",
        "cost",
    ] {
        assert!(
            printed.get(field).is_some(),
            "{id}: {field} missing in {printed}"
        );
    }

    // Exceptions, entries, methods, and a condition.
    let failures = collect(
        session
            .watch(&WatchRequest::new("__main__.fail").exception(true).times(2))
            .unwrap(),
        &format!("{id} exceptions"),
    );
    assert!(
        failures
            .iter()
            .all(|f| f.location == Location::AtExceptionExit),
        "{id}"
    );
    assert!(
        failures[0]
            .throw_exp
            .as_str()
            .unwrap()
            .contains("ValueError"),
        "{id}: {:?}",
        failures[0]
    );
    let entries = collect(
        session
            .watch(&WatchRequest::new("__main__.work").before(true).times(1))
            .unwrap(),
        &format!("{id} entries"),
    );
    assert_eq!(entries[0].location, Location::AtEnter, "{id}");
    assert_eq!(entries[0].cost, None, "{id}");
    let totals = collect(
        session
            .watch(
                &WatchRequest::new("__main__.Cart.total")
                    .times(2)
                    .condition("cost >= 0"),
            )
            .unwrap(),
        &format!("{id} method"),
    );
    assert!(!totals[0].target.is_null(), "{id}: {:?}", totals[0]);

    // stack: the callers, innermost first.
    let stacks = collect(
        session
            .stack(&StackRequest::new("__main__.work").times(1))
            .unwrap(),
        &format!("{id} stack"),
    );
    assert!(
        stacks[0]
            .stack
            .iter()
            .any(|frame| frame.function == "serve"),
        "{id}: {:?}",
        stacks[0]
    );

    // monitor and watch at once on one connection.
    let monitor = session
        .monitor(
            &MonitorRequest::new("__main__.work")
                .interval(Duration::from_millis(200))
                .cycles(2),
        )
        .unwrap();
    let watch = session
        .watch(&WatchRequest::new("__main__.work").times(20))
        .unwrap();
    let watched = std::thread::spawn(move || collect(watch, "concurrent watch").len());
    let reports = collect(monitor, &format!("{id} monitor"));
    assert_eq!(watched.join().unwrap(), 20, "{id}");
    assert_eq!(reports.len(), 2, "{id}: {reports:?}");
    assert_eq!((reports[0].cycle, reports[1].cycle), (1, 2), "{id}");
    assert!(
        reports
            .iter()
            .all(|r| r.total > 0 && r.func_name == "__main__.work"),
        "{id}"
    );
    assert!(reports[0].rt_p99 >= reports[0].rt_p50, "{id}");

    reset(&session, id);
    let outcome = session.detach().unwrap();
    assert!(outcome.directory_removed, "{id}");
}

/// `reset --list` sees an open probe; `reset` removes it and ends its
/// stream with reason `reset`.
fn reset(session: &Session, id: &str) {
    let mut open = session.watch(&WatchRequest::new("__main__.work")).unwrap();
    let listed = session.reset(&ResetRequest::list()).unwrap();
    assert_eq!(listed.probes.len(), 1, "{id}: {listed:?}");
    assert_eq!(listed.probes[0].pattern, "__main__.work", "{id}");
    assert_eq!(listed.probes[0].stream, open.id(), "{id}");
    let removed = session
        .reset(&ResetRequest::matching("__main__.*"))
        .unwrap();
    assert_eq!(removed.removed, 1, "{id}: {removed:?}");
    while let Some(item) = open.next_timeout(Duration::from_secs(10)) {
        item.unwrap();
    }
    assert_eq!(open.end().unwrap().reason, EndReason::Reset, "{id}");
    assert!(
        session
            .reset(&ResetRequest::list())
            .unwrap()
            .probes
            .is_empty(),
        "{id}"
    );
}

#[test]
fn probe_commands_on_every_interpreter() {
    on_every_interpreter(probes);
}
