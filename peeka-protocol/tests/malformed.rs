//! Malformed input through the public API: every case gives a typed error,
//! and a decoder that reported one reports [`FrameError::Corrupt`] after it.

use peeka_protocol::{
    encode_frame, encode_message, Cancel, DecodeError, FrameDecoder, FrameError, Message,
    MessageDecoder, MessageError, MessageReader, TransportError, DEFAULT_MAX_FRAME_LEN,
    MAX_NESTING,
};

/// A valid message to place after the malformed one: it must never come out.
fn valid_frame() -> Vec<u8> {
    let mut wire = Vec::new();
    encode_message(
        &Message::Cancel(Cancel { stream: 1 }),
        DEFAULT_MAX_FRAME_LEN,
        &mut wire,
    )
    .expect("a cancel message fits the default limit");
    wire
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    encode_frame(payload, u32::MAX as usize, &mut wire).expect("test payloads are not empty");
    wire
}

/// Checks a malformed frame followed by a valid one through every adapter:
/// the first decode fails with an error that `expected` accepts, the next
/// one with `Corrupt`, and the valid message never comes out.
fn assert_rejected(payload: &[u8], expected: impl Fn(&DecodeError) -> bool) {
    let mut wire = frame(payload);
    wire.extend(valid_frame());

    // MessageDecoder, whole input at once, then byte by byte.
    let mut decoder = MessageDecoder::new();
    let mut input = &wire[..];
    let Err(err) = decoder.decode(&mut input) else {
        panic!("{payload:?} was accepted");
    };
    assert!(expected(&err), "unexpected error {err:?} for {payload:?}");
    assert!(matches!(
        decoder.decode(&mut input),
        Err(DecodeError::Frame(FrameError::Corrupt))
    ));
    assert!(matches!(
        decoder.decode(&mut &valid_frame()[..]),
        Err(DecodeError::Frame(FrameError::Corrupt))
    ));

    let mut decoder = MessageDecoder::new();
    let mut first_error = None;
    for byte in wire.chunks(1) {
        let mut input = byte;
        match decoder.decode(&mut input) {
            Ok(None) => {}
            Ok(Some(message)) => panic!("decoded {message:?} from malformed input"),
            Err(e) if first_error.is_none() => first_error = Some(e),
            Err(DecodeError::Frame(FrameError::Corrupt)) => {}
            Err(e) => panic!("a second real error {e:?}"),
        }
    }
    let err = first_error.expect("byte-by-byte decoding must fail too");
    assert!(expected(&err), "unexpected error {err:?} byte by byte");

    // MessageReader.
    let mut reader = MessageReader::new(&wire[..]);
    match reader.read_message() {
        Err(TransportError::Decode(err)) => assert!(expected(&err), "reader: {err:?}"),
        other => panic!("reader returned {other:?}"),
    }
    assert!(matches!(
        reader.read_message(),
        Err(TransportError::Decode(DecodeError::Frame(
            FrameError::Corrupt
        )))
    ));

    // The tokio codec.
    #[cfg(feature = "tokio")]
    {
        use tokio_util::codec::Decoder;
        let mut codec = peeka_protocol::MessageCodec::new();
        let mut buf = bytes::BytesMut::from(&wire[..]);
        match codec.decode(&mut buf) {
            Err(TransportError::Decode(err)) => assert!(expected(&err), "codec: {err:?}"),
            other => panic!("codec returned {other:?}"),
        }
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(TransportError::Decode(DecodeError::Frame(
                FrameError::Corrupt
            )))
        ));
    }
}

fn is_message_error(check: impl Fn(&MessageError) -> bool) -> impl Fn(&DecodeError) -> bool {
    move |err| matches!(err, DecodeError::Message(e) if check(e))
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

#[test]
fn truncated_length_prefix_at_eof_is_truncated() {
    for cut in 1..4 {
        let wire = valid_frame();
        let mut reader = MessageReader::new(&wire[..cut]);
        assert!(
            matches!(reader.read_message(), Err(TransportError::Truncated)),
            "cut after {cut} header bytes"
        );
        // Still truncated, not a clean end, if asked again.
        assert!(matches!(
            reader.read_message(),
            Err(TransportError::Truncated)
        ));
    }
}

#[test]
fn truncated_payload_at_eof_is_truncated_after_the_complete_messages() {
    let mut wire = valid_frame();
    let second = valid_frame();
    wire.extend_from_slice(&second[..second.len() - 1]);
    let mut reader = MessageReader::new(&wire[..]);
    assert!(reader.read_message().unwrap().is_some());
    assert!(matches!(
        reader.read_message(),
        Err(TransportError::Truncated)
    ));
}

#[test]
fn empty_stream_and_stream_of_whole_frames_end_cleanly() {
    assert!(MessageReader::new(&b""[..])
        .read_message()
        .unwrap()
        .is_none());
    let wire = valid_frame();
    let mut reader = MessageReader::new(&wire[..]);
    assert!(reader.read_message().unwrap().is_some());
    assert!(reader.read_message().unwrap().is_none());
}

#[cfg(feature = "tokio")]
#[test]
fn codec_reports_a_truncated_length_prefix_at_eof() {
    use tokio_util::codec::Decoder;
    let mut codec = peeka_protocol::MessageCodec::new();
    let mut buf = bytes::BytesMut::from(&[0u8, 0][..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(TransportError::Truncated)
    ));
}

/// Feeds `wire` in chunks of `step` bytes, checking the buffer after every
/// call, and returns the first error.
fn first_error_in_steps(decoder: &mut MessageDecoder, wire: &[u8], step: usize) -> DecodeError {
    let limit = decoder.frames().max_frame_len();
    for chunk in wire.chunks(step) {
        let mut input = chunk;
        let result = decoder.decode(&mut input);
        assert!(
            decoder.frames().buffer_capacity() <= limit,
            "buffer {} above limit {limit}",
            decoder.frames().buffer_capacity()
        );
        match result {
            Ok(Some(message)) => panic!("decoded {message:?}"),
            // `None` means the whole chunk was taken.
            Ok(None) => assert!(input.is_empty()),
            Err(e) => return e,
        }
    }
    panic!("no error");
}

#[test]
fn max_length_prefix_is_refused_without_buffering() {
    for limit in [1024, DEFAULT_MAX_FRAME_LEN] {
        for step in [1, 3, 4, 4096] {
            let mut wire = 0xFFFF_FFFFu32.to_be_bytes().to_vec();
            wire.extend(std::iter::repeat_n(b'{', 8192));
            let mut decoder = MessageDecoder::with_max_frame_len(limit);
            let err = first_error_in_steps(&mut decoder, &wire, step);
            assert!(
                matches!(
                    err,
                    DecodeError::Frame(FrameError::FrameTooLarge { len: 0xFFFF_FFFF, max })
                        if max == limit
                ),
                "{err:?}"
            );
            assert_eq!(decoder.frames().buffer_capacity(), 0);
            assert!(matches!(
                decoder.decode(&mut &valid_frame()[..]),
                Err(DecodeError::Frame(FrameError::Corrupt))
            ));
        }
    }
}

#[test]
fn max_length_prefix_through_the_reader_is_a_typed_error() {
    let mut wire = 0xFFFF_FFFFu32.to_be_bytes().to_vec();
    wire.extend(valid_frame());
    let mut reader = MessageReader::with_max_frame_len(&wire[..], 1024);
    assert!(matches!(
        reader.read_message(),
        Err(TransportError::Decode(DecodeError::Frame(
            FrameError::FrameTooLarge {
                len: 0xFFFF_FFFF,
                max: 1024
            }
        )))
    ));
    assert!(matches!(
        reader.read_message(),
        Err(TransportError::Decode(DecodeError::Frame(
            FrameError::Corrupt
        )))
    ));
}

/// A valid `cancel` message padded with an unknown field to exactly `len`
/// bytes of JSON.
fn padded_cancel(len: usize) -> Vec<u8> {
    let head = br#"{"type":"cancel","stream":1,"pad":""#;
    let mut json = head.to_vec();
    json.extend(std::iter::repeat_n(b'x', len - head.len() - 2));
    json.extend_from_slice(b"\"}");
    assert_eq!(json.len(), len);
    json
}

#[test]
fn frame_of_exactly_the_limit_passes_and_one_byte_more_does_not() {
    let limit = 1024;
    let mut decoder = MessageDecoder::with_max_frame_len(limit);
    let wire = frame(&padded_cancel(limit));
    let mut got = None;
    for byte in wire.chunks(1) {
        let mut input = byte;
        if let Some(message) = decoder.decode(&mut input).unwrap() {
            got = Some(message);
        }
        assert!(decoder.frames().buffer_capacity() <= limit);
    }
    assert_eq!(got, Some(Message::Cancel(Cancel { stream: 1 })));

    let wire = frame(&padded_cancel(limit + 1));
    let err = first_error_in_steps(&mut decoder, &wire, 1);
    assert!(matches!(
        err,
        DecodeError::Frame(FrameError::FrameTooLarge {
            len: 1025,
            max: 1024
        })
    ));
}

#[test]
fn zero_length_frame_is_a_typed_error() {
    let mut wire = vec![0, 0, 0, 0];
    wire.extend(valid_frame());
    let mut decoder = MessageDecoder::new();
    let mut input = &wire[..];
    assert!(matches!(
        decoder.decode(&mut input),
        Err(DecodeError::Frame(FrameError::EmptyFrame))
    ));
    assert!(matches!(
        decoder.decode(&mut input),
        Err(DecodeError::Frame(FrameError::Corrupt))
    ));
}

#[test]
fn invalid_utf8_is_a_typed_error() {
    for (payload, valid_up_to) in [
        (&b"\xFF"[..], 0),
        (
            &b"{\"type\":\"cancel\",\"stream\":1,\"x\":\"\xC3\x28\"}"[..],
            33,
        ),
        // A UTF-16 surrogate encoded in UTF-8 (CESU-8) is not UTF-8.
        (&b"{\"a\":\"\xED\xA0\x80\"}"[..], 6),
        // Truncated multi-byte sequence at the end of the frame.
        (&b"{}\xE2\x82"[..], 2),
    ] {
        assert_rejected(
            payload,
            |err| matches!(err, DecodeError::Frame(FrameError::InvalidUtf8 { valid_up_to: v }) if *v == valid_up_to),
        );
    }
    // The frame decoder alone reports the same.
    let mut decoder = FrameDecoder::new();
    assert_eq!(
        decoder.decode(&mut &frame(b"ok\xC3\x28")[..]),
        Err(FrameError::InvalidUtf8 { valid_up_to: 2 })
    );
    assert_eq!(decoder.decode(&mut &b""[..]), Err(FrameError::Corrupt));
    assert!(decoder.is_corrupt());
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

#[test]
fn invalid_json_is_a_typed_error() {
    for payload in [
        &b"{"[..],
        b"{\"type\":\"cancel\",\"stream\":1",
        b"{\"type\":\"cancel\",\"stream\":1,}",
        b"{\"type\":\"cancel\",\"stream\":01}",
        b"{'type':'cancel'}",
        b"{\"type\":\"cancel\",\"stream\":1} trailing",
        b"{\"type\":\"cancel\",\"stream\":1}{}",
        b"{\"type\":\"cancel\",\"stream\":NaN}",
        b"{\"type\":\"can\ncel\"}",
        b"{\"type\":\"\\x41\"}",
        // Invalid JSON that is not an object either.
        b"[1,",
        b"[\"cancel\",1",
        b"\"unterminated",
        b"   ",
        b"nul",
    ] {
        assert_rejected(
            payload,
            is_message_error(|e| matches!(e, MessageError::InvalidJson(_))),
        );
    }
}

#[test]
fn wrong_field_types_are_typed_errors() {
    for (payload, kind) in [
        (&br#"{"type":"cancel","stream":"seven"}"#[..], "cancel"),
        (br#"{"type":"cancel","stream":-1}"#, "cancel"),
        (br#"{"type":"cancel","stream":1.5}"#, "cancel"),
        (br#"{"type":"cancel","stream":18446744073709551616}"#, "cancel"),
        (br#"{"type":"cancel"}"#, "cancel"),
        (br#"{"type":"cancel","stream":1,"stream":2}"#, "cancel"),
        (br#"{"type":"hello","protocol":"1.0","client":"x"}"#, "hello"),
        (br#"{"type":"hello","protocol":{"major":70000,"minor":0},"client":"x"}"#, "hello"),
        (br#"{"type":"hello","protocol":{"major":1,"minor":0},"client":null}"#, "hello"),
        (br#"{"type":"hello","protocol":{"major":1,"minor":0},"client":"\ud800"}"#, "hello"),
        (
            br#"{"type":"welcome","protocol":{"major":1,"minor":0},"agent_version":"0","python":{"version":"3","implementation":"C"},"pid":-4}"#,
            "welcome",
        ),
        (
            br#"{"type":"welcome","protocol":{"major":1,"minor":0},"agent_version":"0","python":{"version":"3","implementation":"C"},"pid":1,"capabilities":"all"}"#,
            "welcome",
        ),
        (br#"{"type":"rejected","code":7,"message":"m","protocol":{"major":1,"minor":0}}"#, "rejected"),
        (br#"{"type":"request","id":"1","command":"x"}"#, "request"),
        (br#"{"type":"request","id":1,"command":["x"]}"#, "request"),
        (br#"{"type":"response","id":1,"ok":"yes","data":1}"#, "response"),
        (br#"{"type":"response","id":1,"ok":false}"#, "response"),
        (br#"{"type":"response","id":1,"ok":false,"error":"bad"}"#, "response"),
        (br#"{"type":"response","id":1,"ok":false,"error":{"code":"x"}}"#, "response"),
        (br#"{"type":"observation","stream":1,"seq":0}"#, "observation"),
        (br#"{"type":"observation","stream":1,"seq":true,"data":{}}"#, "observation"),
        (br#"{"type":"observations","stream":1,"seq":0,"data":[]}"#, "observations"),
        (br#"{"type":"observations","stream":1,"seq":0,"data":{}}"#, "observations"),
        (br#"{"type":"observations","stream":1,"seq":0}"#, "observations"),
        (
            br#"{"type":"observations","stream":1,"seq":18446744073709551615,"data":[1,2]}"#,
            "observations",
        ),
        (br#"{"type":"event","stream":1,"seq":0,"kind":3}"#, "event"),
        (br#"{"type":"stream_end","stream":1,"reason":7}"#, "stream_end"),
        (br#"{"type":"stream_end","stream":1,"reason":"error","dropped":-1}"#, "stream_end"),
        (br#"{"type":"stream_end","stream":1,"reason":"error","error":{"message":"m"}}"#, "stream_end"),
    ] {
        assert_rejected(
            payload,
            is_message_error(|e| matches!(e, MessageError::InvalidFields { kind: k, .. } if *k == kind)),
        );
    }
}

/// A request whose params nest `depth` arrays (the envelope adds one level).
fn request_nesting(depth: usize) -> String {
    format!(
        r#"{{"type":"request","id":1,"command":"x","params":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn deeply_nested_json_is_too_deep() {
    for json in [
        request_nesting(MAX_NESTING),
        request_nesting(100_000),
        // Deep nesting of objects in a field nobody reads, before the type.
        format!(
            r#"{{"unknown":{}1{},"type":"cancel","stream":1}}"#,
            r#"{"a":"#.repeat(200),
            "}".repeat(200)
        ),
    ] {
        assert_rejected(
            json.as_bytes(),
            is_message_error(|e| matches!(e, MessageError::TooDeep)),
        );
    }
    // Unbalanced deep input is refused as invalid JSON, without recursing.
    let json = format!(
        r#"{{"type":"cancel","stream":1,"x":{}"#,
        "[".repeat(100_000)
    );
    assert_rejected(
        json.as_bytes(),
        is_message_error(|e| matches!(e, MessageError::InvalidJson(_))),
    );
}

#[test]
fn nesting_at_the_limit_is_accepted_and_its_payload_parses() {
    // MAX_NESTING levels in all: the envelope and MAX_NESTING - 1 in params.
    let json = request_nesting(MAX_NESTING - 1);
    let mut decoder = MessageDecoder::new();
    let Some(Message::Request(request)) = decoder.decode(&mut &frame(json.as_bytes())[..]).unwrap()
    else {
        panic!("expected a request");
    };
    // The payload can be parsed into a tree, as MAX_NESTING promises.
    let value: serde_json::Value = request.params.parse().unwrap();
    assert!(value.is_array());

    // Brackets inside strings are not nesting.
    let json = format!(
        r#"{{"type":"request","id":1,"command":"{}","params":"{}\"{}"}}"#,
        "[".repeat(1000),
        "{".repeat(1000),
        "[".repeat(1000)
    );
    assert!(Message::parse(&json).is_ok());
}

#[test]
fn a_batch_array_counts_as_one_level_of_nesting() {
    // The envelope and the `data` array take two levels; an item may nest
    // MAX_NESTING - 2 more, one less than a single observation's data.
    let batch = |depth: usize| {
        format!(
            r#"{{"type":"observations","stream":1,"seq":0,"data":[0,{}{}]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    assert!(matches!(
        Message::parse(&batch(MAX_NESTING - 2)),
        Ok(Message::Observations(_))
    ));
    assert_rejected(
        batch(MAX_NESTING - 1).as_bytes(),
        is_message_error(|e| matches!(e, MessageError::TooDeep)),
    );
}

#[test]
fn non_object_json_is_not_an_object() {
    for payload in [
        &b"[]"[..],
        b"[1,2]",
        b"[\"cancel\",1]",
        b"[null,{\"type\":\"cancel\"}]",
        b"[{\"type\":\"cancel\",\"stream\":1}]",
        b"\"cancel\"",
        b"17",
        b"-0.5",
        b"true",
        b"null",
        b" \n[null]",
    ] {
        assert_rejected(
            payload,
            is_message_error(|e| matches!(e, MessageError::NotAnObject)),
        );
    }
}

#[test]
fn missing_or_ill_typed_type_is_missing_type() {
    for payload in [
        &b"{}"[..],
        b" {\"stream\":1}",
        b"{\"type\":null,\"stream\":1}",
        b"{\"type\":3}",
        b"{\"type\":[\"cancel\"]}",
        b"{\"type\":{\"name\":\"cancel\"}}",
        b"{\"Type\":\"cancel\",\"stream\":1}",
    ] {
        assert_rejected(
            payload,
            is_message_error(|e| matches!(e, MessageError::MissingType)),
        );
    }
}

#[test]
fn unknown_type_is_unknown_type() {
    for (payload, kind) in [
        (&br#"{"type":"teleport"}"#[..], "teleport"),
        (br#"{"type":""}"#, ""),
        (br#"{"type":"Cancel","stream":1}"#, "Cancel"),
        (br#"{"type":"cancel ","stream":1}"#, "cancel "),
        (br#"{"type":"\u00e9v\u00e9nement"}"#, "événement"),
    ] {
        assert_rejected(
            payload,
            is_message_error(|e| matches!(e, MessageError::UnknownType(t) if t == kind)),
        );
    }
}

#[test]
fn escaped_type_names_are_recognised() {
    let json = r#"{"type":"can\u0063el","stream":4}"#;
    assert_eq!(
        Message::parse(json).unwrap(),
        Message::Cancel(Cancel { stream: 4 })
    );
}

#[test]
fn errors_carry_messages_that_say_what_to_do() {
    let err = MessageDecoder::with_max_frame_len(1024)
        .decode(&mut &0xFFFF_FFFFu32.to_be_bytes()[..])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("4294967295") && text.contains("1024"),
        "{text}"
    );
    let err = Message::parse(r#"{"type":"teleport"}"#).unwrap_err();
    assert!(err.to_string().contains("upgrade"), "{err}");
}
