//! Arbitrary text through `Message::parse`: it never panics, and whatever
//! it accepts survives `to_json` and parsing again unchanged, also as a
//! frame through `encode_message` and `MessageDecoder`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peeka_protocol::{encode_message, Message, MessageDecoder, MessageError};

/// Large enough for any fuzz input.
const LIMIT: usize = u32::MAX as usize;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let message = match Message::parse(text) {
        Ok(message) => message,
        Err(MessageError::NotAnObject) => {
            // Only valid JSON is "not an object"; and it really is not one.
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
            assert!(!text.trim_start().starts_with('{'));
            return;
        }
        Err(_) => return,
    };

    let json = message.to_json();
    let again = Message::parse(&json)
        .unwrap_or_else(|e| panic!("to_json gave {json:?}, which does not parse: {e}"));
    assert_eq!(again, message, "{json}");
    assert_eq!(again.to_json(), json, "to_json is not stable");
    assert!(json.starts_with(&format!(r#"{{"type":"{}""#, message.kind())));

    let mut wire = Vec::new();
    encode_message(&message, LIMIT, &mut wire).expect("within the limit");
    let mut decoder = MessageDecoder::with_max_frame_len(LIMIT);
    let mut input = &wire[..];
    let decoded = decoder
        .decode(&mut input)
        .expect("an encoded message decodes");
    assert_eq!(decoded.as_ref(), Some(&message));
    assert!(input.is_empty());
});
