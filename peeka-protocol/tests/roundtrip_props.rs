//! Property tests: any sequence of messages, encoded back to back and cut
//! into arbitrary chunks, decodes to the same messages in the same order,
//! through every adapter; and arbitrary garbage never panics a decoder nor
//! makes it hold more memory than its frame limit.

use std::io::{self, Read};

use peeka_protocol::{
    encode_frame, encode_message, Cancel, DecodeError, EndReason, ErrorBody, ErrorCode, Event,
    FrameDecoder, FrameError, Hello, Message, MessageDecoder, MessageReader, Observation,
    ObservationBatch, Payload, ProtocolVersion, PythonInfo, Rejected, Request, Response, StreamEnd,
    TransportError, Welcome, DEFAULT_MAX_FRAME_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Number, Value};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Characters that stress JSON string escaping and UTF-8 handling.
const TRICKY: &[char] = &[
    '"',
    '\\',
    '/',
    '\n',
    '\r',
    '\t',
    '\u{0}',
    '\u{8}',
    '\u{c}',
    '\u{1f}',
    '\u{7f}',
    '\u{80}',
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    'é',
    'ß',
    '中',
    '😀',
    '\u{10ffff}',
    '{',
    '}',
    '[',
    ']',
    ':',
    ',',
    'u',
];

/// Arbitrary strings: printable unicode, any scalar value (control characters
/// included), and dense mixes of characters that need escaping.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        vec(any::<char>(), 0..24).prop_map(String::from_iter),
        vec(prop::sample::select(TRICKY), 0..24).prop_map(String::from_iter),
    ]
}

/// Arbitrary JSON values of bounded depth and size.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((text(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    json_value().prop_map(Payload::from)
}

const KNOWN_CODES: &[&str] = &[
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

/// Known codes, and unknown ones (which `from_wire` keeps as `Other`).
fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        prop::sample::select(KNOWN_CODES).prop_map(ErrorCode::from_wire),
        text().prop_map(|code| ErrorCode::from_wire(&code)),
    ]
}

fn error_body() -> impl Strategy<Value = ErrorBody> {
    (error_code(), text(), proptest::option::of(text())).prop_map(|(code, message, traceback)| {
        ErrorBody {
            code,
            message,
            traceback,
        }
    })
}

fn end_reason() -> impl Strategy<Value = EndReason> {
    prop::sample::select(
        &[
            EndReason::CountReached,
            EndReason::Cancelled,
            EndReason::Reset,
            EndReason::Detached,
            EndReason::Error,
        ][..],
    )
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| ProtocolVersion { major, minor })
}

/// The first seq and the items of a valid `observations` batch: 1 to 6
/// items, with seqs anywhere, up to ending exactly at `u64::MAX`.
fn batch_seq_and_data() -> impl Strategy<Value = (u64, Vec<Payload>)> {
    vec(payload(), 1..6).prop_flat_map(|data| {
        let last_start = u64::MAX - (data.len() as u64 - 1);
        let seq = prop_oneof![0..=last_start, Just(last_start)];
        (seq, Just(data))
    })
}

/// A message of any variant with arbitrary contents.
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (version(), text())
            .prop_map(|(protocol, client)| Message::Hello(Hello { protocol, client })),
        (
            version(),
            text(),
            text(),
            text(),
            any::<u32>(),
            vec(text(), 0..4)
        )
            .prop_map(
                |(protocol, agent_version, version, implementation, pid, capabilities)| {
                    Message::Welcome(Welcome {
                        protocol,
                        agent_version,
                        python: PythonInfo {
                            version,
                            implementation,
                        },
                        pid,
                        capabilities,
                    })
                }
            ),
        (error_code(), text(), version()).prop_map(|(code, message, protocol)| {
            Message::Rejected(Rejected {
                code,
                message,
                protocol,
            })
        }),
        (any::<u64>(), text(), payload()).prop_map(|(id, command, params)| {
            Message::Request(Request {
                id,
                command,
                params,
            })
        }),
        (any::<u64>(), payload()).prop_map(|(id, data)| Message::Response(Response {
            id,
            result: Ok(data)
        })),
        (any::<u64>(), error_body()).prop_map(|(id, error)| Message::Response(Response {
            id,
            result: Err(error)
        })),
        (any::<u64>(), any::<u64>(), payload()).prop_map(|(stream, seq, data)| {
            Message::Observation(Observation { stream, seq, data })
        }),
        (any::<u64>(), batch_seq_and_data()).prop_map(|(stream, (seq, data))| {
            let batch = ObservationBatch::new(stream, seq, data).expect("a valid batch");
            Message::Observations(batch)
        }),
        (any::<u64>(), any::<u64>(), text(), payload()).prop_map(|(stream, seq, kind, data)| {
            Message::Event(Event {
                stream,
                seq,
                kind,
                data,
            })
        }),
        (
            any::<u64>(),
            end_reason(),
            any::<u64>(),
            proptest::option::of(error_body())
        )
            .prop_map(|(stream, reason, dropped, error)| {
                Message::StreamEnd(StreamEnd {
                    stream,
                    reason,
                    dropped,
                    error,
                })
            }),
        any::<u64>().prop_map(|stream| Message::Cancel(Cancel { stream })),
    ]
}

fn messages() -> impl Strategy<Value = Vec<Message>> {
    vec(message(), 1..8)
}

/// Split points into a buffer, as indices to be scaled to its length.
fn split_points() -> impl Strategy<Value = Vec<Index>> {
    vec(any::<Index>(), 0..12)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn encode_all(messages: &[Message]) -> Vec<u8> {
    let mut wire = Vec::new();
    for message in messages {
        encode_message(message, DEFAULT_MAX_FRAME_LEN, &mut wire)
            .expect("generated messages fit the default limit");
    }
    wire
}

/// Cuts `bytes` at the given points (sorted, duplicates give empty chunks).
fn split<'a>(bytes: &'a [u8], points: &[Index]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Feeds chunks to a `MessageDecoder`, checking that a `None` always means
/// the chunk was used up and that the buffer stays within the limit.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Message> {
    let mut decoder = MessageDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = chunk;
        loop {
            let decoded = decoder.decode(&mut input).expect("encoded messages decode");
            assert!(decoder.frames().buffer_capacity() <= decoder.frames().max_frame_len());
            match decoded {
                Some(message) => out.push(message),
                None => break,
            }
        }
        assert!(input.is_empty(), "decoder returned None with bytes left");
    }
    assert!(
        !decoder.frames().has_partial_frame(),
        "whole frames leave no partial frame"
    );
    out
}

/// One step of [`ShortReader`]: fail with `Interrupted` first, or not, then
/// deliver at most `len` bytes.
#[derive(Debug, Clone, Copy)]
struct ReadStep {
    interrupt: bool,
    len: usize,
}

fn read_steps() -> impl Strategy<Value = Vec<ReadStep>> {
    let len = prop_oneof![8 => 1usize..64, 1 => 1usize..100_000];
    vec(
        (prop::bool::weighted(0.15), len).prop_map(|(interrupt, len)| ReadStep { interrupt, len }),
        1..16,
    )
}

/// A reader that returns short reads of the planned sizes (cycling through
/// the plan) and sometimes `ErrorKind::Interrupted`.
#[derive(Debug)]
struct ShortReader {
    data: Vec<u8>,
    pos: usize,
    steps: Vec<ReadStep>,
    step: usize,
    interrupted: bool,
}

impl ShortReader {
    fn new(data: Vec<u8>, steps: Vec<ReadStep>) -> Self {
        Self {
            data,
            pos: 0,
            steps,
            step: 0,
            interrupted: false,
        }
    }
}

impl Read for ShortReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = self.steps[self.step % self.steps.len()];
        if step.interrupt && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        self.step += 1;
        let n = step.len.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Segments of a garbage stream: random bytes, plausible and implausible
/// length prefixes, valid frames and frames of JSON-looking token soup.
fn garbage_segment() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"type\"",
        "\"cancel\"",
        "\"request\"",
        "\"response\"",
        "\"stream_end\"",
        "\"observations\"",
        "\"seq\"",
        "\"stream\"",
        "\"id\"",
        "\"ok\"",
        "\"data\"",
        "\"error\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "1",
        "-1",
        "1e999",
        "18446744073709551616",
        "true",
        "null",
        " ",
    ];
    prop_oneof![
        vec(any::<u8>(), 0..64),
        (0u32..4200).prop_map(|len| len.to_be_bytes().to_vec()),
        any::<u32>().prop_map(|len| len.to_be_bytes().to_vec()),
        message().prop_map(|m| encode_all(&[m])),
        vec(prop::sample::select(TOKENS), 1..24).prop_map(|tokens| {
            let mut frame = Vec::new();
            encode_frame(tokens.concat().as_bytes(), u32::MAX as usize, &mut frame)
                .expect("token soup is never empty");
            frame
        }),
    ]
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    vec(garbage_segment(), 0..8).prop_map(|segments| segments.concat())
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn single_messages_survive_to_json_and_parse(message in message()) {
        let json = message.to_json();
        let prefix = format!(r#"{{"type":"{}""#, message.kind());
        prop_assert!(json.starts_with(&prefix), "{} does not start with {}", json, prefix);
        prop_assert_eq!(Message::parse(&json).unwrap(), message);
    }

    #[test]
    fn a_batch_yields_its_items_with_consecutive_seqs(
        stream in any::<u64>(),
        (seq, data) in batch_seq_and_data(),
    ) {
        let batch = ObservationBatch::new(stream, seq, data.clone()).unwrap();
        prop_assert_eq!(batch.last_seq() - batch.seq(), data.len() as u64 - 1);
        let expected: Vec<Observation> = data
            .into_iter()
            .enumerate()
            .map(|(i, data)| Observation { stream, seq: seq + i as u64, data })
            .collect();
        let observations: Vec<Observation> = batch.into_observations().collect();
        prop_assert_eq!(observations, expected);
    }

    #[test]
    fn message_decoder_rebuilds_sequences_from_random_chunks(
        messages in messages(),
        points in split_points(),
    ) {
        let wire = encode_all(&messages);
        let decoded = decode_chunks(split(&wire, &points));
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn message_decoder_rebuilds_sequences_one_byte_at_a_time(messages in messages()) {
        let wire = encode_all(&messages);
        let decoded = decode_chunks(wire.chunks(1));
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn frame_decoder_yields_the_json_of_each_message(
        messages in messages(),
        points in split_points(),
    ) {
        let wire = encode_all(&messages);
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for chunk in split(&wire, &points) {
            let mut input = chunk;
            while let Some(frame) = decoder.decode(&mut input).unwrap() {
                frames.push(frame);
            }
            prop_assert!(input.is_empty());
        }
        let expected: Vec<String> = messages.iter().map(Message::to_json).collect();
        prop_assert_eq!(frames, expected);
    }

    #[test]
    fn message_reader_survives_short_and_interrupted_reads(
        messages in messages(),
        steps in read_steps(),
    ) {
        let wire = encode_all(&messages);
        let mut reader = MessageReader::new(ShortReader::new(wire, steps));
        let mut decoded = Vec::new();
        while let Some(message) = reader.read_message().unwrap() {
            decoded.push(message);
        }
        // Stays at a clean end once there.
        prop_assert!(reader.read_message().unwrap().is_none());
        prop_assert_eq!(reader.get_ref().pos, reader.get_ref().data.len());
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn message_reader_reports_truncation_anywhere_inside_a_frame(
        messages in messages(),
        cut in any::<Index>(),
        steps in read_steps(),
    ) {
        let wire = encode_all(&messages);
        // Cut strictly inside the last frame (header or payload).
        let last_len = encode_all(&messages[messages.len() - 1..]).len();
        let last_start = wire.len() - last_len;
        let cut_at = last_start + 1 + cut.index(last_len - 1);
        let mut reader = MessageReader::new(ShortReader::new(wire[..cut_at].to_vec(), steps));
        for expected in &messages[..messages.len() - 1] {
            prop_assert_eq!(&reader.read_message().unwrap().unwrap(), expected);
        }
        prop_assert!(matches!(reader.read_message(), Err(TransportError::Truncated)));
    }

    #[test]
    fn garbage_never_panics_nor_overgrows_the_frame_decoder(
        bytes in garbage(),
        max in 0usize..4096,
        points in split_points(),
    ) {
        let mut decoder = FrameDecoder::with_max_frame_len(max);
        let mut failed = false;
        for chunk in split(&bytes, &points) {
            let mut input = chunk;
            loop {
                let result = decoder.decode(&mut input);
                prop_assert!(decoder.buffer_capacity() <= max);
                match result {
                    Ok(Some(frame)) => {
                        prop_assert!(!failed);
                        prop_assert!(!frame.is_empty() && frame.len() <= max);
                    }
                    Ok(None) => {
                        prop_assert!(!failed);
                        prop_assert!(input.is_empty());
                        break;
                    }
                    Err(FrameError::Corrupt) => {
                        prop_assert!(failed, "Corrupt before any real error");
                        break;
                    }
                    Err(_) => {
                        prop_assert!(!failed, "a second real error after the first");
                        prop_assert!(decoder.is_corrupt());
                        failed = true;
                    }
                }
            }
        }
        if failed {
            prop_assert_eq!(decoder.decode(&mut &b""[..]), Err(FrameError::Corrupt));
        }
    }

    #[test]
    fn garbage_never_panics_nor_overgrows_the_message_decoder(
        bytes in garbage(),
        max in 0usize..4096,
        points in split_points(),
    ) {
        let mut decoder = MessageDecoder::with_max_frame_len(max);
        let mut failed = false;
        'chunks: for chunk in split(&bytes, &points) {
            let mut input = chunk;
            loop {
                let result = decoder.decode(&mut input);
                prop_assert!(decoder.frames().buffer_capacity() <= max);
                match result {
                    Ok(Some(_)) => prop_assert!(!failed),
                    Ok(None) => break,
                    Err(DecodeError::Frame(FrameError::Corrupt)) => {
                        prop_assert!(failed, "Corrupt before any real error");
                        break 'chunks;
                    }
                    Err(_) => {
                        prop_assert!(!failed);
                        failed = true;
                    }
                }
            }
        }
        if failed {
            prop_assert!(matches!(
                decoder.decode(&mut &b"\0\0\0\x01x"[..]),
                Err(DecodeError::Frame(FrameError::Corrupt))
            ));
        }
    }

    #[test]
    fn garbage_never_panics_the_message_reader(
        bytes in garbage(),
        max in 0usize..4096,
        steps in read_steps(),
    ) {
        let frames = bytes.len() / 4 + 1;
        let mut reader = MessageReader::with_max_frame_len(ShortReader::new(bytes, steps), max);
        // Messages, then a clean end, a truncation or a decoding error; each
        // of those is reported again (as corruption for a decoding error).
        for _ in 0..frames {
            match reader.read_message() {
                Ok(Some(_)) => {}
                Ok(None) => {
                    prop_assert!(reader.read_message().unwrap().is_none());
                    return Ok(());
                }
                Err(TransportError::Truncated) => {
                    prop_assert!(matches!(reader.read_message(), Err(TransportError::Truncated)));
                    return Ok(());
                }
                Err(TransportError::Decode(e)) => {
                    prop_assert!(!matches!(e, DecodeError::Frame(FrameError::Corrupt)));
                    prop_assert!(matches!(
                        reader.read_message(),
                        Err(TransportError::Decode(DecodeError::Frame(FrameError::Corrupt)))
                    ));
                    return Ok(());
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
        prop_assert!(false, "more messages than there can be frames");
    }
}

#[cfg(feature = "tokio")]
mod tokio_codec {
    use bytes::BytesMut;
    use peeka_protocol::MessageCodec;
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;

    /// Feeds chunks into a `BytesMut` as a `Framed` would, decoding after
    /// each, then finishes with `decode_eof`.
    fn decode_with_codec<'a>(
        codec: &mut MessageCodec,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<Message>, TransportError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(message) = codec.decode(&mut buf)? {
                out.push(message);
            }
        }
        while let Some(message) = codec.decode_eof(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn codec_rebuilds_sequences_from_random_chunks(
            messages in messages(),
            points in split_points(),
        ) {
            let wire = encode_all(&messages);
            let mut codec = MessageCodec::new();
            let decoded = decode_with_codec(&mut codec, split(&wire, &points)).unwrap();
            prop_assert_eq!(decoded, messages);
        }

        #[test]
        fn codec_rebuilds_sequences_one_byte_at_a_time(messages in messages()) {
            let wire = encode_all(&messages);
            let mut codec = MessageCodec::new();
            let decoded = decode_with_codec(&mut codec, wire.chunks(1)).unwrap();
            prop_assert_eq!(decoded, messages);
        }

        #[test]
        fn codec_encodes_exactly_like_encode_message(messages in messages()) {
            let mut codec = MessageCodec::new();
            let mut buf = BytesMut::new();
            for (i, message) in messages.iter().enumerate() {
                if i % 2 == 0 {
                    codec.encode(message, &mut buf).unwrap();
                } else {
                    codec.encode(message.clone(), &mut buf).unwrap();
                }
            }
            prop_assert_eq!(&buf[..], &encode_all(&messages)[..]);
        }

        #[test]
        fn codec_reports_truncation_at_eof(
            messages in messages(),
            cut in any::<Index>(),
            points in split_points(),
        ) {
            let wire = encode_all(&messages);
            let last_len = encode_all(&messages[messages.len() - 1..]).len();
            let cut_at = wire.len() - last_len + 1 + cut.index(last_len - 1);
            let mut codec = MessageCodec::new();
            let result = decode_with_codec(&mut codec, split(&wire[..cut_at], &points));
            prop_assert!(matches!(result, Err(TransportError::Truncated)));
        }

        #[test]
        fn garbage_never_panics_the_codec(
            bytes in garbage(),
            max in 0usize..4096,
            points in split_points(),
        ) {
            let mut codec = MessageCodec::with_max_frame_len(max);
            let mut failed = false;
            let mut buf = BytesMut::new();
            for chunk in split(&bytes, &points) {
                buf.extend_from_slice(chunk);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(_)) => prop_assert!(!failed),
                        Ok(None) => {
                            prop_assert!(buf.is_empty(), "the codec takes every byte it is given");
                            break;
                        }
                        Err(TransportError::Decode(DecodeError::Frame(FrameError::Corrupt))) => {
                            prop_assert!(failed);
                            break;
                        }
                        Err(_) => {
                            prop_assert!(!failed);
                            failed = true;
                        }
                    }
                }
            }
            let _ = codec.decode_eof(&mut buf);
        }
    }
}
