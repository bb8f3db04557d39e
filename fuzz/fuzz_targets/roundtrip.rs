//! Messages built from fuzz input, encoded back to back with
//! `encode_message` and decoded by `MessageDecoder` in fuzz-chosen chunks,
//! must come out equal and in order.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use peeka_protocol::{
    encode_message, Cancel, EndReason, ErrorBody, ErrorCode, Event, Hello, Message, MessageDecoder,
    Observation, ObservationBatch, Payload, ProtocolVersion, PythonInfo, Rejected, Request,
    Response, StreamEnd, Welcome, DEFAULT_MAX_FRAME_LEN,
};
use serde_json::{Map, Number, Value};

const KNOWN_CODES: [&str; 12] = [
    "bad_request",
    "unknown_command",
    "invalid_params",
    "not_found",
    "invalid_expression",
    "unknown_stream",
    "duplicate_id",
    "limit_exceeded",
    "invalid_state",
    "protocol_version_mismatch",
    "shutting_down",
    "internal",
];

const REASONS: [EndReason; 5] = [
    EndReason::CountReached,
    EndReason::Cancelled,
    EndReason::Reset,
    EndReason::Detached,
    EndReason::Error,
];

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    u.arbitrary()
}

fn value(u: &mut Unstructured<'_>, depth: usize) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<u64>()?),
        4 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::String(text(u)?),
        6 => {
            let len = u.int_in_range(0..=4)?;
            let items = (0..len)
                .map(|_| value(u, depth - 1))
                .collect::<Result<_>>()?;
            Value::Array(items)
        }
        _ => {
            let len = u.int_in_range(0..=4)?;
            let mut map = Map::new();
            for _ in 0..len {
                map.insert(text(u)?, value(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

fn payload(u: &mut Unstructured<'_>) -> Result<Payload> {
    Ok(Payload::from(value(u, 5)?))
}

fn version(u: &mut Unstructured<'_>) -> Result<ProtocolVersion> {
    Ok(ProtocolVersion {
        major: u.arbitrary()?,
        minor: u.arbitrary()?,
    })
}

fn error_code(u: &mut Unstructured<'_>) -> Result<ErrorCode> {
    Ok(if u.arbitrary()? {
        ErrorCode::from_wire(u.choose(&KNOWN_CODES)?)
    } else {
        // Unknown codes are kept as `Other`; a known spelling maps back to
        // its variant, as it would on the wire.
        ErrorCode::from_wire(&text(u)?)
    })
}

fn error_body(u: &mut Unstructured<'_>) -> Result<ErrorBody> {
    Ok(ErrorBody {
        code: error_code(u)?,
        message: text(u)?,
        traceback: if u.arbitrary()? { Some(text(u)?) } else { None },
    })
}

/// A valid `observations` batch: 1 to 8 items, its first seq anywhere that
/// leaves room for the last one (often right at the top of the range).
fn batch(u: &mut Unstructured<'_>) -> Result<ObservationBatch> {
    let len = u.int_in_range(1..=8u64)?;
    let last_start = u64::MAX - (len - 1);
    let seq = if u.arbitrary()? {
        last_start
    } else {
        u.int_in_range(0..=last_start)?
    };
    let data = (0..len).map(|_| payload(u)).collect::<Result<_>>()?;
    let stream = u.arbitrary()?;
    Ok(ObservationBatch::new(stream, seq, data).expect("seq and len were chosen to fit"))
}

fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(match u.int_in_range(0..=10)? {
        0 => Message::Hello(Hello {
            protocol: version(u)?,
            client: text(u)?,
        }),
        1 => Message::Welcome(Welcome {
            protocol: version(u)?,
            agent_version: text(u)?,
            python: PythonInfo {
                version: text(u)?,
                implementation: text(u)?,
            },
            pid: u.arbitrary()?,
            capabilities: u.arbitrary()?,
        }),
        2 => Message::Rejected(Rejected {
            code: error_code(u)?,
            message: text(u)?,
            protocol: version(u)?,
        }),
        3 => Message::Request(Request {
            id: u.arbitrary()?,
            command: text(u)?,
            params: payload(u)?,
        }),
        4 => Message::Response(Response {
            id: u.arbitrary()?,
            result: Ok(payload(u)?),
        }),
        5 => Message::Response(Response {
            id: u.arbitrary()?,
            result: Err(error_body(u)?),
        }),
        6 => Message::Observation(Observation {
            stream: u.arbitrary()?,
            seq: u.arbitrary()?,
            data: payload(u)?,
        }),
        7 => Message::Event(Event {
            stream: u.arbitrary()?,
            seq: u.arbitrary()?,
            kind: text(u)?,
            data: payload(u)?,
        }),
        8 => Message::StreamEnd(StreamEnd {
            stream: u.arbitrary()?,
            reason: *u.choose(&REASONS)?,
            dropped: u.arbitrary()?,
            error: if u.arbitrary()? {
                Some(error_body(u)?)
            } else {
                None
            },
        }),
        9 => Message::Observations(batch(u)?),
        _ => Message::Cancel(Cancel {
            stream: u.arbitrary()?,
        }),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(count) = u.int_in_range(1..=8) else {
        return;
    };
    let Ok(messages) = (0..count)
        .map(|_| message(&mut u))
        .collect::<Result<Vec<_>>>()
    else {
        return;
    };
    let mut wire = Vec::new();
    for message in &messages {
        encode_message(message, DEFAULT_MAX_FRAME_LEN, &mut wire).expect("small messages fit");
    }

    // Chunk sizes come from what is left of the input (1 byte each).
    let mut decoder = MessageDecoder::new();
    let mut decoded = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let size = match u.int_in_range(0..=64u8) {
            Ok(0) | Err(_) => rest.len(),
            Ok(n) => usize::from(n).min(rest.len()),
        };
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let mut input = chunk;
        while let Some(message) = decoder.decode(&mut input).expect("valid frames decode") {
            decoded.push(message);
        }
        assert!(input.is_empty());
        assert!(decoder.frames().buffer_capacity() <= DEFAULT_MAX_FRAME_LEN);
    }
    assert!(!decoder.frames().has_partial_frame());
    assert_eq!(decoded, messages);

    // A batch stands for its items, with consecutive seqs from its own.
    for message in decoded {
        if let Message::Observations(batch) = message {
            let (stream, seq, len) = (batch.stream(), batch.seq(), batch.data().len());
            assert_eq!(batch.last_seq() - seq, len as u64 - 1);
            for (i, observation) in batch.into_observations().enumerate() {
                assert_eq!(
                    (observation.stream, observation.seq),
                    (stream, seq + i as u64)
                );
            }
        }
    }
});
