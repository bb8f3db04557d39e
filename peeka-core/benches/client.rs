//! Client benchmarks against a real attached target (the preferred
//! interpreter of the manifest: the newest with `sys.monitoring`).
//!
//! - `ping`: one request/response round trip over the Unix socket.
//! - `watch_hot`: observations per second delivered to a Rust consumer by
//!   `watch` on a function the target calls in a tight loop (the target
//!   emits as fast as it can; the agent drops what it cannot send, shown as
//!   `seq` gaps, and the totals are printed at the end);
//!   `watch_hot_send_budget_50`, the same with `send_budget(50)`.
//! - `flood`: the same with the test fixture `tick` in burst mode (almost no
//!   Python work per item), which shows the client's own ceiling.
//! - `decode`: decoding `watch` frames from memory into typed observations
//!   (no socket, no target), the client-side cost per item; and
//!   `decode_batch_256`, the same items sent 256 to an `observations`
//!   message (protocol 1.1).
//!
//! `cargo bench -p peeka-core --bench client`; without a manifest of
//! provisioned interpreters it prints why and measures only `decode`.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peeka_core::client::{
    AttachConfig, ClientError, ErrorCode, Session, StreamItem, Subscription, WatchObservation,
    WatchRequest,
};
use peeka_protocol::{
    encode_to_vec, Message, MessageReader, Observation, ObservationBatch, Payload,
};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde::de::DeserializeOwned;

const SAMPLE: &str = r#"{"func_name":"__main__.hot","location":"AtExit","params":[],"kwargs":{},"target":null,"returnObj":1,"throwExp":null,"success":true,"cost":0.000412,"thread_id":140241,"thread_name":"hot","timestamp":1795000000.25}"#;

fn pick_python() -> Option<Interpreter> {
    let manifest = match Manifest::load() {
        Ok(manifest) => manifest,
        Err(e) => {
            eprintln!("client bench: no interpreters ({e}); run scripts/provision-pythons.sh");
            return None;
        }
    };
    ["3.13", "3.12", "3.14", "3.11"]
        .iter()
        .find_map(|id| manifest.get(id).cloned())
}

/// Counts what a stream delivered and what it lost.
#[derive(Default)]
struct Tally {
    received: u64,
    gaps: u64,
    next_seq: u64,
}

impl Tally {
    fn take<T: DeserializeOwned + std::fmt::Debug>(
        &mut self,
        stream: &mut Subscription<T>,
        n: u64,
    ) -> Duration {
        let started = Instant::now();
        for _ in 0..n {
            match stream.next() {
                Some(Ok(item)) => {
                    let seq = item.seq();
                    self.gaps += seq.saturating_sub(self.next_seq);
                    self.next_seq = seq + 1;
                    self.received += 1;
                }
                other => panic!("the stream ended: {other:?}"),
            }
        }
        started.elapsed()
    }

    fn report<T>(&self, what: &str, stream: Subscription<T>) {
        let canceller = stream.canceller();
        let client_dropped = stream.client_dropped();
        canceller.cancel();
        drop(stream);
        eprintln!(
            "{what}: {} observations received, {} lost in seq gaps (dropped by the agent), {} dropped by the client",
            self.received, self.gaps, client_dropped
        );
    }
}

fn tick(session: &Session) -> Subscription<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match session.subscribe("tick", serde_json::json!({"burst": true})) {
            Ok(subscription) => return subscription,
            Err(ClientError::Agent {
                code: ErrorCode::UnknownCommand,
                ..
            }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("tick: {e}"),
        }
    }
}

fn live(c: &mut Criterion) {
    let Some(python) = pick_python() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/service.py");
    // A quiet target for the round trip and the fixture flood, a busy one
    // (a thread calling `hot()` in a tight loop) for `watch`.
    let quiet = TargetProcess::spawn(&python, &script, &[], &[]).unwrap();
    let busy = TargetProcess::spawn(&python, &script, &["--hot"], &[]).unwrap();
    let (session, report) = Session::attach(quiet.pid(), &AttachConfig::default()).unwrap();
    let (busy_session, _) = Session::attach(busy.pid(), &AttachConfig::default()).unwrap();
    eprintln!(
        "client bench: Python {} ({}), attached with {:?}",
        report.python, python.id, report.method
    );

    let mut group = c.benchmark_group("client");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("ping", |b| b.iter(|| session.ping().unwrap()));

    group.throughput(Throughput::Elements(1));
    let mut flood = tick(&session);
    let mut tally = Tally::default();
    group.bench_function("flood", |b| {
        b.iter_custom(|iters| tally.take(&mut flood, iters));
    });
    tally.report("flood", flood);

    let mut watch: Subscription<WatchObservation> = busy_session
        .watch(&WatchRequest::new("__main__.hot").success(true))
        .unwrap();
    let mut tally = Tally::default();
    group.bench_function("watch_hot", |b| {
        b.iter_custom(|iters| tally.take(&mut watch, iters));
    });
    tally.report("watch_hot", watch);

    // The same with the largest writer budget a stream may ask for.
    let mut watch: Subscription<WatchObservation> = busy_session
        .watch(
            &WatchRequest::new("__main__.hot")
                .success(true)
                .send_budget(50),
        )
        .unwrap();
    let mut tally = Tally::default();
    group.bench_function("watch_hot_send_budget_50", |b| {
        b.iter_custom(|iters| tally.take(&mut watch, iters));
    });
    tally.report("watch_hot_send_budget_50", watch);
    group.finish();
    session.detach().unwrap();
    busy_session.detach().unwrap();
}

/// How many observations one `observations` message holds in `decode_batch_256`.
const BATCH_LEN: usize = 256;

fn decode(c: &mut Criterion) {
    let data = Payload::from_json(SAMPLE).unwrap();
    let single = Message::Observation(Observation {
        stream: 1,
        seq: 0,
        data: data.clone(),
    });
    let batch = Message::Observations(ObservationBatch::new(1, 0, vec![data; BATCH_LEN]).unwrap());
    let mut group = c.benchmark_group("client");
    for (name, message, per_frame) in [
        ("decode", single, 1),
        ("decode_batch_256", batch, BATCH_LEN),
    ] {
        let frames = 10_000usize.div_ceil(per_frame);
        let wire = encode_to_vec(&message).unwrap().repeat(frames);
        group.throughput(Throughput::Elements((frames * per_frame) as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let take = |observation: Observation| {
                    let typed: WatchObservation = observation.data.parse().unwrap();
                    std::hint::black_box(StreamItem::Observation {
                        seq: observation.seq,
                        data: typed,
                    });
                };
                for message in MessageReader::new(&wire[..]) {
                    match message {
                        Ok(Message::Observation(observation)) => take(observation),
                        Ok(Message::Observations(batch)) => {
                            batch.into_observations().for_each(take)
                        }
                        _ => panic!("not an observation"),
                    }
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, live);
criterion_main!(benches);
