//! Encode and decode throughput for watch observations.
//!
//! Two `observation` messages shaped like what the agent sends for `watch`:
//! a small one (about 200 bytes of JSON data) and a large one (about 64 KiB,
//! with big `params` and `kwargs`). For each:
//!
//! - `encode`: [`encode_message`] into a reused `Vec`;
//! - `decode`: [`MessageDecoder::decode`] of one whole frame;
//! - `parse_value`: for reference, the frame's JSON text parsed into a
//!   `serde_json::Value` tree (what a decoder without raw payloads would do).
//!
//! The `decode_parts` group splits the large decode into its stages, to see
//! where the time goes: [`Message::parse`] alone (no framing), one
//! validating pass over the JSON (`IgnoredAny`, like the type-tag pass of
//! `Message::parse`), the typed `Observation` pass alone, the byte scan for
//! nesting depth that `Message::parse` does before the typed pass (and a
//! faster variant of it), and the UTF-8 check and copy of the framing.
//!
//! The `batch_256` group compares two ways of receiving 256 small
//! observations: one `observations` message (protocol 1.1) decoded and
//! expanded into its observations, and 256 `observation` frames decoded one
//! by one; its throughput counts observations. The batch is also one of the
//! `observation_*` cases above (`observation_small_x256_batch`).
//!
//! Run: `cargo bench -p peeka-protocol --bench codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peeka_protocol::{
    encode_message, Message, MessageDecoder, Observation, ObservationBatch, Payload,
    DEFAULT_MAX_FRAME_LEN,
};
use serde::de::IgnoredAny;
use serde_json::{json, Value};

/// How many observations the batch benchmarks put in one message.
const BATCH_LEN: usize = 256;

/// A small observation: one call of a module function with two arguments.
fn small_observation() -> Message {
    observation(small_data())
}

/// The data of [`small_observation`], about 200 bytes of JSON.
fn small_data() -> Value {
    json!({
        "func_name": "shop.place_order",
        "location": "AtExit",
        "params": ["'A-17'", 3],
        "kwargs": {},
        "target": null,
        "returnObj": "True",
        "throwExp": null,
        "success": true,
        "cost": 0.042,
        "thread_id": 140_245,
        "thread_name": "MainThread",
        "timestamp": 1_764_331_200.123,
        "seq": 0
    })
}

/// [`BATCH_LEN`] small observations, seqs 17 onwards, in one `observations`
/// message.
fn small_batch() -> Message {
    let data = vec![Payload::from(small_data()); BATCH_LEN];
    Message::Observations(ObservationBatch::new(1, 17, data).expect("a valid batch"))
}

/// A large observation: a batch import with hundreds of expanded line items
/// in `params` and many keyword arguments, about 64 KiB of JSON.
fn large_observation() -> Message {
    let mut items = Vec::new();
    let mut kwargs = serde_json::Map::new();
    let mut i = 0usize;
    loop {
        items.push(json!({
            "sku": format!("SKU-{i:06}"),
            "name": format!("Widget \"deluxe\" n°{i} – size {}", i % 7),
            "qty": i % 13,
            "price": format!("Decimal('{}.{:02}')", 10 + i % 90, i % 100),
            "tags": ["imported", format!("batch-{}", i / 50)],
            "meta": {"warehouse": "FRA-2", "fragile": i % 3 == 0, "weight_g": 125.5 + i as f64}
        }));
        if i % 4 == 0 {
            kwargs.insert(
                format!("option_{i}"),
                json!(format!("<Option {i} at 0x7f3a{i:08x}>")),
            );
        }
        i += 1;
        let data = large_data(&items, &kwargs);
        if serde_json::to_string(&data).map_or(0, |s| s.len()) >= 64 * 1024 {
            return observation(data);
        }
    }
}

fn large_data(items: &[Value], kwargs: &serde_json::Map<String, Value>) -> Value {
    json!({
        "func_name": "app.imports.BatchImporter.import_rows",
        "location": "AtExit",
        "params": [{"__repr__": "<BatchImporter 'nightly'>", "source": "s3://bucket/rows.csv"}, items],
        "kwargs": kwargs,
        "target": {"__class__": "app.imports.BatchImporter", "name": "nightly", "retries": 3},
        "returnObj": {"imported": items.len(), "skipped": 0, "errors": []},
        "throwExp": null,
        "success": true,
        "cost": 1832.25,
        "thread_id": 140_245,
        "thread_name": "ThreadPoolExecutor-0_3",
        "timestamp": "2026-11-28T12:00:00.123",
        "seq": 17
    })
}

fn observation(data: Value) -> Message {
    Message::Observation(Observation {
        stream: 1,
        seq: 17,
        data: Payload::from(data),
    })
}

fn encoded(message: &Message) -> Vec<u8> {
    let mut wire = Vec::new();
    encode_message(message, DEFAULT_MAX_FRAME_LEN, &mut wire).expect("the message fits");
    wire
}

/// Whether arrays and objects nest deeper than `max`: the same per-byte
/// state machine (an in-string flag and an escape flag checked on every
/// byte) as the private check in `Message::parse`, to time that pass alone.
fn nesting_deeper_than_per_byte(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The same check, but skipping each string's body in a tight inner loop:
/// a candidate replacement, timed against the per-byte version.
fn nesting_deeper_than(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut bytes = json.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'"' => {
                while let Some(&c) = bytes.next() {
                    match c {
                        b'\\' => {
                            bytes.next();
                        }
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn cases() -> [(&'static str, Message); 3] {
    [
        ("small", small_observation()),
        ("large", large_observation()),
        ("small_x256_batch", small_batch()),
    ]
}

fn bench_codec(c: &mut Criterion) {
    for (name, message) in cases() {
        let wire = encoded(&message);
        let json = message.to_json();
        let mut group = c.benchmark_group(format!("observation_{name}"));
        group.throughput(Throughput::Bytes(wire.len() as u64));

        let mut out = Vec::with_capacity(wire.len());
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                encode_message(black_box(&message), DEFAULT_MAX_FRAME_LEN, &mut out)
                    .expect("the message fits");
                black_box(out.len())
            });
        });

        let mut decoder = MessageDecoder::new();
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut input = black_box(&wire[..]);
                decoder
                    .decode(&mut input)
                    .expect("the frame decodes")
                    .expect("the frame is whole")
            });
        });

        group.bench_function("parse_value", |b| {
            b.iter(|| serde_json::from_str::<Value>(black_box(&json)).expect("valid JSON"));
        });
        group.finish();
    }
}

fn bench_decode_parts(c: &mut Criterion) {
    let message = large_observation();
    let json = message.to_json();
    // Both scanners agree with `Message::parse` on this input and on one
    // that is too deep only outside its strings.
    let deep = format!(
        r#"{{"type":"request","id":1,"command":"[[[","params":{}"\"[\""{}}}"#,
        "[".repeat(128),
        "]".repeat(128)
    );
    assert!(matches!(
        Message::parse(&deep),
        Err(peeka_protocol::MessageError::TooDeep)
    ));
    for scan in [nesting_deeper_than_per_byte, nesting_deeper_than] {
        assert!(!scan(json.as_bytes(), 128));
        assert!(scan(deep.as_bytes(), 128));
    }

    let mut group = c.benchmark_group("decode_parts_large");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function(BenchmarkId::new("message_parse", "no_framing"), |b| {
        b.iter(|| Message::parse(black_box(&json)).expect("valid message"));
    });
    group.bench_function(BenchmarkId::new("ignored_any_pass", "like_type_tag"), |b| {
        b.iter(|| serde_json::from_str::<IgnoredAny>(black_box(&json)).expect("valid JSON"));
    });
    group.bench_function(BenchmarkId::new("typed_pass", "observation"), |b| {
        b.iter(|| serde_json::from_str::<Observation>(black_box(&json)).expect("valid JSON"));
    });
    group.bench_function(BenchmarkId::new("depth_scan", "per_byte_flags"), |b| {
        b.iter(|| nesting_deeper_than_per_byte(black_box(json.as_bytes()), 128));
    });
    group.bench_function(BenchmarkId::new("depth_scan", "skip_strings"), |b| {
        b.iter(|| nesting_deeper_than(black_box(json.as_bytes()), 128));
    });
    group.bench_function(BenchmarkId::new("utf8_check_and_copy", "framing"), |b| {
        b.iter(|| String::from_utf8(black_box(json.as_bytes()).to_vec()).expect("valid UTF-8"));
    });
    group.finish();
}

/// Decodes every whole frame of `wire` and hands each observation it holds
/// to `black_box`; returns how many there were.
fn decode_observations(decoder: &mut MessageDecoder, mut wire: &[u8]) -> usize {
    let mut count = 0;
    let mut take = |observation: Observation| {
        black_box(observation);
        count += 1;
    };
    while let Some(message) = decoder.decode(&mut wire).expect("the frames decode") {
        match message {
            Message::Observation(observation) => take(observation),
            Message::Observations(batch) => batch.into_observations().for_each(&mut take),
            other => panic!("not an observation: {}", other.kind()),
        }
    }
    count
}

fn bench_batch(c: &mut Criterion) {
    let batch = encoded(&small_batch());
    let Message::Observations(expanded) = small_batch() else {
        unreachable!("small_batch is a batch")
    };
    let singles: Vec<u8> = expanded
        .into_observations()
        .flat_map(|observation| encoded(&Message::Observation(observation)))
        .collect();

    let mut group = c.benchmark_group("batch_256");
    group.throughput(Throughput::Elements(BATCH_LEN as u64));
    let mut decoder = MessageDecoder::new();
    for (name, wire) in [("one_batch", &batch), ("single_frames", &singles)] {
        assert_eq!(decode_observations(&mut decoder, wire), BATCH_LEN);
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| decode_observations(&mut decoder, black_box(wire)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codec, bench_decode_parts, bench_batch);
criterion_main!(benches);
