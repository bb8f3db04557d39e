//! The async client (feature `tokio`) against the real agent in a real
//! target, on every interpreter: attach, ping, info, reuse, concurrent
//! streams, cancel from another task, drop, detach.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{on_every_interpreter, private_dir, spawn_service};
use futures_util::StreamExt;
use peeka_core::client::{
    AsyncSession, AsyncSubscription, AttachConfig, ClientError, EndReason, ErrorCode, StreamItem,
};
use peeka_testkit::Interpreter;
use serde_json::{json, Value};

async fn tick(session: &AsyncSession, params: Value) -> AsyncSubscription<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match session.subscribe("tick", params.clone()).await {
            Ok(subscription) => return subscription,
            Err(ClientError::Agent {
                code: ErrorCode::UnknownCommand,
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("tick: {e}"),
        }
    }
}

async fn drain(mut subscription: AsyncSubscription<Value>) -> (Vec<u64>, AsyncSubscription<Value>) {
    let mut numbers = Vec::new();
    while let Some(item) = subscription.next().await {
        if let StreamItem::Observation { seq, data } = item.unwrap() {
            assert_eq!(seq, numbers.len() as u64, "a gap in seq");
            numbers.push(data["n"].as_u64().unwrap());
        }
    }
    (numbers, subscription)
}

async fn basics(python: &Interpreter) {
    let id = &python.id;
    let process = spawn_service(python, &[]);
    let pid = process.pid();

    let error = AsyncSession::connect(pid).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NotAttached { .. }),
        "{id}: {error}"
    );

    let (session, report) = AsyncSession::attach(pid, &AttachConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    assert!(
        !report.reused && report.method.is_some(),
        "{id}: {report:?}"
    );
    assert_eq!(session.welcome().python.version, python.version, "{id}");
    let pong = session.ping().await.unwrap();
    assert_eq!(pong.pid, pid, "{id}");
    let info = session.info().await.unwrap();
    assert_eq!(info.python.version, python.version, "{id}");

    let (again, report) = AsyncSession::attach(pid, &AttachConfig::default())
        .await
        .unwrap();
    assert!(report.reused && report.method.is_none(), "{id}: {report:?}");
    again.ping().await.unwrap();

    // Two streams at once, with requests in between.
    let fast = tick(&session, json!({"interval": 0.002, "times": 30})).await;
    let slow = tick(&session, json!({"interval": 0.01, "times": 10})).await;
    let (pings, (fast_numbers, fast), (slow_numbers, slow)) = tokio::join!(
        async {
            for _ in 0..10 {
                session.ping().await.unwrap();
            }
        },
        drain(fast),
        drain(slow),
    );
    let () = pings;
    assert_eq!(fast_numbers, (0..30).collect::<Vec<_>>(), "{id}");
    assert_eq!(slow_numbers, (0..10).collect::<Vec<_>>(), "{id}");
    assert_eq!(fast.end().unwrap().reason, EndReason::CountReached, "{id}");
    assert_eq!(slow.end().unwrap().reason, EndReason::CountReached, "{id}");

    // Cancel from another task.
    let stream = tick(&session, json!({"interval": 0.002})).await;
    let canceller = stream.canceller();
    let cancelling = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        canceller.cancel();
    });
    let (numbers, stream) = tokio::time::timeout(Duration::from_secs(10), drain(stream))
        .await
        .unwrap();
    cancelling.await.unwrap();
    assert!(!numbers.is_empty(), "{id}");
    assert_eq!(stream.end().unwrap().reason, EndReason::Cancelled, "{id}");

    // Drop cancels without blocking.
    let mut stream = tick(&session, json!({"interval": 0.002})).await;
    let stream_id = stream.id();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while session
        .info()
        .await
        .unwrap()
        .streams
        .iter()
        .any(|s| s.stream == stream_id)
    {
        assert!(Instant::now() < deadline, "{id}: the dropped stream stays");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let outcome = again.detach().await.unwrap();
    assert!(
        outcome.detached && outcome.directory_removed,
        "{id}: {outcome:?}"
    );
    assert!(!private_dir(&process).exists(), "{id}");
    let error = session.ping().await.unwrap_err();
    assert!(error.is_disconnected(), "{id}: {error}");
    assert!(!session.is_connected(), "{id}");
    let why = session.disconnection().expect("the connection is closed");
    assert_eq!(why.to_string(), error.to_string(), "{id}");
}

fn on_runtime(python: &Interpreter) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(basics(python));
}

#[test]
fn async_client_on_every_interpreter() {
    on_every_interpreter(on_runtime);
}
