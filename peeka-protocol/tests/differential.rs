//! Differential test of [`FrameDecoder`] against `tokio_util`'s
//! `LengthDelimitedCodec` configured for the same framing: a 4-byte
//! big-endian length field at offset 0, no length adjustment, the length
//! header stripped from the frame, and the same maximum frame length.
//!
//! On streams of valid frames (non-empty UTF-8 payloads within the limit),
//! optionally ended by a length header above the limit, both must produce
//! the same frames in the same order, and both must fail on the same chunk,
//! once the oversized header is complete.
//!
//! The two differ on purpose, and the tests at the end of this file pin each
//! difference down:
//!
//! 1. A length of 0: `LengthDelimitedCodec` yields an empty frame; we reject
//!    it with [`FrameError::EmptyFrame`] (every message is a non-empty JSON
//!    object, so a zero length means the peer is not speaking our protocol).
//! 2. A payload that is not UTF-8: `LengthDelimitedCodec` yields the bytes;
//!    we reject it with [`FrameError::InvalidUtf8`] (frames carry JSON text).
//! 3. After an error: `LengthDelimitedCodec` keeps the offending header in
//!    its buffer and reports the same error again on every call; our
//!    decoder is corrupt and returns [`FrameError::Corrupt`] from then on.
//! 4. A stream ending right after a complete header: `LengthDelimitedCodec`
//!    has already consumed the header, so its `decode_eof` sees an empty
//!    buffer and reports a clean end; our decoder still reports a partial
//!    frame, which the adapters turn into a truncation error.
//! 5. Buffering: `LengthDelimitedCodec` leaves an incomplete frame in the
//!    caller's buffer; our decoder consumes every byte it is given and
//!    buffers the partial frame itself (not visible in the frames produced).
//!
//! `tokio-util` is a dev-dependency, so this test runs with or without the
//! crate's `tokio` feature.

use std::io;

use bytes::BytesMut;
use peeka_protocol::{encode_frame, FrameDecoder, FrameError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

fn reference_codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_length(4)
        .length_adjustment(0)
        .num_skip(4)
        .big_endian()
        .max_frame_length(max)
        .new_codec()
}

/// What one decoder made of a chunked stream.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    /// Index of the chunk on which the first error was reported.
    failed_at_chunk: Option<usize>,
}

fn run_ours(max: usize, chunks: &[&[u8]]) -> (Outcome, Option<FrameError>, FrameDecoder) {
    let mut decoder = FrameDecoder::with_max_frame_len(max);
    let mut frames = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut input = *chunk;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(frame)) => frames.push(frame.into_bytes()),
                Ok(None) => break,
                Err(e) => {
                    let outcome = Outcome {
                        frames,
                        failed_at_chunk: Some(i),
                    };
                    return (outcome, Some(e), decoder);
                }
            }
        }
    }
    let outcome = Outcome {
        frames,
        failed_at_chunk: None,
    };
    (outcome, None, decoder)
}

fn run_reference(
    max: usize,
    chunks: &[&[u8]],
) -> (Outcome, Option<io::Error>, LengthDelimitedCodec, BytesMut) {
    let mut codec = reference_codec(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    let outcome = Outcome {
                        frames,
                        failed_at_chunk: Some(i),
                    };
                    return (outcome, Some(e), codec, buf);
                }
            }
        }
    }
    let outcome = Outcome {
        frames,
        failed_at_chunk: None,
    };
    (outcome, None, codec, buf)
}

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

/// Cuts a string to at most `max` bytes on a character boundary.
fn truncate_to(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// A stream case: the limit, the payloads of its valid frames, and maybe a
/// trailing header above the limit followed by some bytes.
#[derive(Debug, Clone)]
struct Case {
    max: usize,
    payloads: Vec<String>,
    oversized: Option<(u32, Vec<u8>)>,
}

fn payload_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{1,40}",
        vec(any::<char>(), 1..40).prop_map(String::from_iter),
        // Long payloads, to reach the limit and cross internal buffer steps.
        (1usize..40_000, any::<char>()).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let max = prop_oneof![4usize..64, 64usize..70_000];
    (
        max,
        vec(payload_text(), 0..10),
        any::<bool>(),
        any::<u32>(),
        vec(any::<u8>(), 0..32),
    )
        .prop_map(|(max, payloads, oversize, len, trailing)| {
            let payloads = payloads
                .into_iter()
                .map(|p| truncate_to(p, max))
                .filter(|p| !p.is_empty())
                .collect();
            // A length in (max, u32::MAX]; `max` is below u32::MAX here.
            let max32 = u32::try_from(max).expect("max is below 70 000");
            let len = max32 + 1 + len % (u32::MAX - max32);
            Case {
                max,
                payloads,
                oversized: oversize.then_some((len, trailing)),
            }
        })
}

fn wire(case: &Case) -> Vec<u8> {
    let mut wire = Vec::new();
    for payload in &case.payloads {
        encode_frame(payload.as_bytes(), case.max, &mut wire)
            .expect("payloads are non-empty and within the limit");
    }
    if let Some((len, trailing)) = &case.oversized {
        wire.extend_from_slice(&len.to_be_bytes());
        wire.extend_from_slice(trailing);
    }
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn same_frames_and_same_failure_as_length_delimited_codec(
        case in case(),
        points in vec(any::<Index>(), 0..16),
    ) {
        let wire = wire(&case);
        let chunks = split(&wire, &points);
        let (ours, our_error, decoder, ) = run_ours(case.max, &chunks);
        let (theirs, their_error, mut codec, mut buf) = run_reference(case.max, &chunks);

        prop_assert_eq!(&ours, &theirs);
        let expected: Vec<Vec<u8>> = case.payloads.iter().map(|p| p.clone().into_bytes()).collect();
        prop_assert_eq!(&ours.frames, &expected);

        match &case.oversized {
            Some((len, _)) => {
                prop_assert_eq!(
                    our_error,
                    Some(FrameError::FrameTooLarge { len: u64::from(*len), max: case.max })
                );
                prop_assert!(decoder.buffer_capacity() <= case.max);
                let their_error = their_error.unwrap();
                prop_assert_eq!(their_error.kind(), io::ErrorKind::InvalidData);
            }
            None => {
                prop_assert!(our_error.is_none());
                prop_assert!(their_error.is_none());
                prop_assert!(!decoder.has_partial_frame());
                prop_assert!(codec.decode_eof(&mut buf).unwrap().is_none());
            }
        }
    }

    #[test]
    fn both_accept_a_frame_of_exactly_the_limit_and_refuse_one_more(
        max in 1usize..5000,
        c in any::<char>(),
        points in vec(any::<Index>(), 0..8),
    ) {
        // Exactly `max` bytes: `c` repeated, padded with ASCII.
        let mut text: String = std::iter::repeat_n(c, max / c.len_utf8()).collect();
        text.extend(std::iter::repeat_n('x', max - text.len()));
        let mut wire = Vec::new();
        encode_frame(text.as_bytes(), max, &mut wire).unwrap();
        wire.extend_from_slice(&u32::try_from(max + 1).unwrap().to_be_bytes());
        let chunks = split(&wire, &points);

        let (ours, our_error, _) = run_ours(max, &chunks);
        let (theirs, their_error, _, _) = run_reference(max, &chunks);
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(ours.frames, vec![text.into_bytes()]);
        prop_assert_eq!(our_error, Some(FrameError::FrameTooLarge { len: max as u64 + 1, max }));
        prop_assert!(their_error.is_some());
    }
}

// ---------------------------------------------------------------------------
// The deliberate differences, one test each.
// ---------------------------------------------------------------------------

#[test]
fn difference_zero_length_is_an_empty_frame_for_them_and_an_error_for_us() {
    let wire = [0u8, 0, 0, 0];
    let (theirs, their_error, _, _) = run_reference(1024, &[&wire]);
    assert!(their_error.is_none());
    assert_eq!(theirs.frames, vec![Vec::<u8>::new()]);

    let (ours, our_error, decoder) = run_ours(1024, &[&wire]);
    assert!(ours.frames.is_empty());
    assert_eq!(our_error, Some(FrameError::EmptyFrame));
    assert!(decoder.is_corrupt());
}

#[test]
fn difference_invalid_utf8_is_bytes_for_them_and_an_error_for_us() {
    let payload = [b'{', 0xFF, 0xFE, b'}'];
    let mut wire = Vec::new();
    encode_frame(&payload, 1024, &mut wire).unwrap();

    let (theirs, their_error, _, _) = run_reference(1024, &[&wire]);
    assert!(their_error.is_none());
    assert_eq!(theirs.frames, vec![payload.to_vec()]);

    let (ours, our_error, _) = run_ours(1024, &[&wire]);
    assert!(ours.frames.is_empty());
    assert_eq!(our_error, Some(FrameError::InvalidUtf8 { valid_up_to: 1 }));
}

#[test]
fn difference_after_an_error_they_repeat_it_and_we_report_corruption() {
    let mut wire = 0xFFFF_FFFFu32.to_be_bytes().to_vec();
    encode_frame(b"{}", 1024, &mut wire).unwrap();

    let (_, their_error, mut codec, mut buf) = run_reference(1024, &[&wire]);
    assert_eq!(their_error.unwrap().kind(), io::ErrorKind::InvalidData);
    // The header is still in their buffer, and the error comes again.
    assert_eq!(buf.len(), wire.len());
    assert_eq!(
        codec.decode(&mut buf).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );

    let (_, our_error, mut decoder) = run_ours(1024, &[&wire]);
    assert_eq!(
        our_error,
        Some(FrameError::FrameTooLarge {
            len: 0xFFFF_FFFF,
            max: 1024
        })
    );
    assert_eq!(decoder.decode(&mut &wire[4..]), Err(FrameError::Corrupt));
    assert_eq!(decoder.decode(&mut &b""[..]), Err(FrameError::Corrupt));
}

#[test]
fn difference_eof_right_after_a_header_is_clean_for_them_and_partial_for_us() {
    let wire = 5u32.to_be_bytes();

    let (theirs, their_error, mut codec, mut buf) = run_reference(1024, &[&wire]);
    assert!(theirs.frames.is_empty() && their_error.is_none());
    assert!(buf.is_empty());
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());

    let (ours, our_error, decoder) = run_ours(1024, &[&wire]);
    assert!(ours.frames.is_empty() && our_error.is_none());
    assert!(decoder.has_partial_frame());
}

#[test]
fn difference_they_keep_a_partial_frame_in_the_callers_buffer_we_take_it() {
    let mut wire = Vec::new();
    encode_frame(b"{\"a\":1}", 1024, &mut wire).unwrap();
    let partial = &wire[..6];

    let (_, _, _, buf) = run_reference(1024, &[partial]);
    // Header consumed, the two payload bytes wait in the caller's buffer.
    assert_eq!(&buf[..], &partial[4..]);

    let mut decoder = FrameDecoder::with_max_frame_len(1024);
    let mut input = partial;
    assert_eq!(decoder.decode(&mut input), Ok(None));
    assert!(input.is_empty());
    assert!(decoder.has_partial_frame());
    let mut rest = &wire[6..];
    assert_eq!(decoder.decode(&mut rest).unwrap().unwrap(), "{\"a\":1}");
}
