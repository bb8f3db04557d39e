//! The blocking client against the real agent in a real target, on every
//! interpreter of the manifest: attach, handshake, ping, info, reuse,
//! multiplexed streams, cancel, drop, overload, errors, detach.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{attach, eventually, on_every_interpreter, private_dir, spawn_service, tick};
use peeka_core::client::{
    AttachConfig, ClientError, EndReason, ErrorCode, Session, SessionOptions, StreamItem,
    Subscription,
};
use peeka_testkit::Interpreter;
use serde_json::{json, Value};

/// Consumes a subscription to its end; returns the `n` of each observation
/// and checks that `seq` has no gap.
fn drain(subscription: &mut Subscription<Value>, what: &str) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut expected_seq = 0;
    for item in subscription.by_ref() {
        match item.unwrap_or_else(|e| panic!("{what}: {e}")) {
            StreamItem::Observation { seq, data } => {
                assert_eq!(seq, expected_seq, "{what}: a gap in seq");
                expected_seq += 1;
                numbers.push(data["n"].as_u64().unwrap());
            }
            StreamItem::Event { kind, .. } => panic!("{what}: unexpected event {kind}"),
        }
    }
    numbers
}

fn session_basics(python: &Interpreter) {
    let id = &python.id;
    let mut process = spawn_service(python, &[]);
    let pid = process.pid();

    // Nothing attached yet: the error names the fix.
    let error = Session::connect(pid).unwrap_err();
    assert!(
        matches!(error, ClientError::NotAttached { pid: p, .. } if p == pid),
        "{id}: {error}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("peeka-cli attach {pid}")),
        "{id}: {error}"
    );

    let (session, report) = attach(python, &process);
    assert!(report.timeline.total() > Duration::ZERO, "{id}");
    assert_eq!(session.pid(), pid);
    assert_eq!(
        session.welcome().unwrap().python.version,
        python.version,
        "{id}"
    );
    assert!(private_dir(&process).join("agent.sock").exists(), "{id}");

    let pong = session.ping().unwrap();
    assert!(pong.pong, "{id}");
    assert_eq!(pong.pid, pid, "{id}: same pid namespace in the tests");
    assert!(pong.round_trip < Duration::from_secs(1), "{id}");
    let info = session.info().unwrap();
    assert_eq!(info.python.version, python.version, "{id}");
    assert!(
        info.commands.iter().any(|c| c == "detach"),
        "{id}: {info:?}"
    );
    assert_eq!(info.connections, 1, "{id}");

    // Reuse: a second connection, and an attach that finds the agent there.
    let second = Session::connect(pid).unwrap();
    second.ping().unwrap();
    let (third, again) = Session::attach(pid, &AttachConfig::default()).unwrap();
    assert!(again.reused, "{id}: {again:?}");
    assert_eq!(again.method, None, "{id}");
    assert_eq!(session.info().unwrap().connections, 3, "{id}");
    drop(third);

    // The agent's errors arrive typed.
    let error = session.request("no_such_command", json!({})).unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::UnknownCommand),
        "{id}: {error}"
    );
    let error = session.request("ping", json!({"bogus": 1})).unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::InvalidParams),
        "{id}: {error}"
    );
    let echo = session
        .request("ping", json!({"echo": [1, "two"]}))
        .unwrap();
    assert_eq!(echo["echo"], json!([1, "two"]), "{id}");

    streams_multiplexed(&session, id);
    cancel_from_another_thread(&session, id);
    drop_cancels(&session, id);
    slow_consumer_stays_bounded(pid, id);
    timeouts(pid, &session, id);

    // A subscription keeps its connection open after its session is gone.
    let mut orphan = {
        let short_lived = Session::connect(pid).unwrap();
        tick(&short_lived, json!({"interval": 0.002, "times": 5}))
    };
    assert_eq!(drain(&mut orphan, "orphan"), [0, 1, 2, 3, 4], "{id}");
    assert_eq!(
        orphan.end().unwrap().reason,
        EndReason::CountReached,
        "{id}"
    );
    drop(orphan);

    // Detach from the second session while the first has a stream open:
    // the stream ends with `detached`, everything is removed.
    let mut open = tick(&session, json!({"interval": 0.01}));
    assert!(matches!(open.next(), Some(Ok(_))), "{id}");
    let outcome = second.detach().unwrap();
    assert!(outcome.detached, "{id}");
    assert_eq!(outcome.streams_ended, 1, "{id}: {outcome:?}");
    assert!(outcome.directory_removed, "{id}: {outcome:?}");
    for item in open.by_ref() {
        item.unwrap();
    }
    assert_eq!(open.end().unwrap().reason, EndReason::Detached, "{id}");
    assert!(
        !private_dir(&process).exists(),
        "{id}: the private directory is left"
    );
    let error = session.ping().unwrap_err();
    assert!(error.is_disconnected(), "{id}: {error}");
    assert!(!session.is_connected(), "{id}");
    let why = session.disconnection().expect("the connection is closed");
    assert!(why.is_disconnected(), "{id}: {why}");
    assert!(matches!(
        Session::connect(pid),
        Err(ClientError::NotAttached { .. })
    ));
    assert!(process.is_alive(), "{id}: the target died");
    assert_eq!(process.stderr(), "", "{id}: the target printed errors");
}

fn streams_multiplexed(session: &Session, id: &str) {
    let mut fast = tick(session, json!({"interval": 0.002, "times": 40}));
    let mut slow = tick(session, json!({"interval": 0.01, "times": 15}));
    assert_ne!(fast.id(), slow.id());
    assert_eq!(fast.started().stream, fast.id(), "{id}");
    let fast_thread = thread::spawn(move || {
        let numbers = drain(&mut fast, "fast");
        (numbers, fast.end().cloned())
    });
    // Requests go on while both streams flow.
    for _ in 0..20 {
        session.ping().unwrap();
    }
    let slow_numbers = drain(&mut slow, "slow");
    let (fast_numbers, fast_end) = fast_thread.join().unwrap();
    assert_eq!(fast_numbers, (0..40).collect::<Vec<_>>(), "{id}");
    assert_eq!(slow_numbers, (0..15).collect::<Vec<_>>(), "{id}");
    assert_eq!(fast_end.unwrap().reason, EndReason::CountReached, "{id}");
    let slow_end = slow.end().unwrap();
    assert_eq!(slow_end.reason, EndReason::CountReached, "{id}");
    assert_eq!((slow_end.dropped, slow_end.client_dropped), (0, 0), "{id}");
    assert!(slow.next().is_none(), "{id}: items after the end");
}

fn cancel_from_another_thread(session: &Session, id: &str) {
    let mut stream = tick(session, json!({"interval": 0.002}));
    let canceller = stream.canceller();
    let started = Instant::now();
    let cancelling = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        canceller.cancel();
        canceller.cancel(); // idempotent
    });
    let numbers = drain(&mut stream, "cancelled");
    cancelling.join().unwrap();
    assert!(!numbers.is_empty(), "{id}");
    assert_eq!(stream.end().unwrap().reason, EndReason::Cancelled, "{id}");
    assert!(started.elapsed() < Duration::from_secs(5), "{id}");
    assert!(
        session.info().unwrap().streams.is_empty(),
        "{id}: the stream is still open"
    );
}

fn drop_cancels(session: &Session, id: &str) {
    let mut stream = tick(session, json!({"interval": 0.002}));
    let stream_id = stream.id();
    for _ in 0..3 {
        stream.next().unwrap().unwrap();
    }
    let started = Instant::now();
    drop(stream);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{id}: drop blocked"
    );
    eventually("the dropped stream is gone", Duration::from_secs(5), || {
        session
            .info()
            .unwrap()
            .streams
            .iter()
            .all(|s| s.stream != stream_id)
    });
    session.ping().unwrap();
}

/// A consumer that does not keep up: the client keeps at most its buffer
/// and counts the rest, and requests still get through meanwhile.
fn slow_consumer_stays_bounded(pid: u32, id: &str) {
    let options = SessionOptions::default().stream_buffer(64);
    let session = Arc::new(Session::connect_with(pid, &options).unwrap());
    let mut flood = tick(&session, json!({"burst": true}));
    thread::sleep(Duration::from_millis(100));
    // Requests get through the overload (the agent queues their answers
    // behind what it already queued for the stream).
    for _ in 0..2 {
        session.ping().unwrap();
    }
    assert!(
        flood.client_dropped() > 0,
        "{id}: nothing dropped by the client"
    );
    flood.canceller().cancel();
    let mut taken = 0u64;
    for item in flood.by_ref() {
        item.unwrap();
        taken += 1;
    }
    let end = flood.end().unwrap();
    assert_eq!(end.reason, EndReason::Cancelled, "{id}");
    assert!(end.client_dropped > 0, "{id}: {end:?}");
    // What was kept is bounded by the buffer (plus what arrived while the
    // consumer was draining).
    assert!(taken >= 64, "{id}: {taken}");
}

/// A request that times out leaves the session usable; a stream that opens
/// after its request timed out is cancelled by the client at once.
fn timeouts(pid: u32, observer: &Session, id: &str) {
    let options = SessionOptions::default().request_timeout(Duration::from_millis(100));
    let hasty = Session::connect_with(pid, &options).unwrap();
    // `tick` is registered by now (it ran in the earlier steps); `delay`
    // makes the agent answer after the client gave up.
    let error = hasty
        .subscribe("tick", json!({"interval": 0.002, "delay": 0.4}))
        .unwrap_err();
    assert!(error.is_timeout(), "{id}: {error}");
    assert!(error.to_string().contains("tick"), "{id}: {error}");
    // By now the agent has opened the stream; without the client's cancel
    // it would run forever.
    thread::sleep(Duration::from_millis(400));
    eventually(
        "the abandoned stream is cancelled",
        Duration::from_secs(5),
        || observer.info().unwrap().streams.is_empty(),
    );
    // The late answer did not confuse the session: the next request is
    // answered.
    hasty
        .ping()
        .unwrap_or_else(|e| panic!("{id}: ping after a timeout: {e}"));
    assert!(hasty.is_connected(), "{id}");
    assert!(hasty.disconnection().is_none(), "{id}");
}

#[test]
fn sync_client_on_every_interpreter() {
    on_every_interpreter(session_basics);
}
