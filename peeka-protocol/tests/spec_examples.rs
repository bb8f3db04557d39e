//! Every JSON example in `docs/protocol.md` is a valid message, and every
//! message type has at least one example, so the specification stays true.

use std::collections::BTreeSet;

use peeka_protocol::{encode_to_vec, Message};

fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_in_the_spec_parses_and_every_type_has_one() {
    let spec = include_str!("../../docs/protocol.md");
    let mut seen = BTreeSet::new();
    for block in json_blocks(spec) {
        let message = Message::parse(&block)
            .unwrap_or_else(|e| panic!("example in docs/protocol.md does not parse: {e}\n{block}"));
        assert_eq!(Message::parse(&message.to_json()).unwrap(), message);
        seen.insert(message.kind());
    }
    let all: BTreeSet<_> = Message::TYPES.into_iter().collect();
    assert_eq!(seen, all, "docs/protocol.md must show every message type");
}

#[test]
fn the_spec_hex_dump_is_what_the_encoder_writes() {
    let spec = include_str!("../../docs/protocol.md");
    let message = Message::parse(r#"{"type":"cancel","stream":7}"#).unwrap();
    let hex: Vec<String> = encode_to_vec(&message)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (prefix, payload) = hex.split_at(4);
    let line = format!("{}  {}", prefix.join(" "), payload.join(" "));
    assert!(
        spec.contains(&line),
        "docs/protocol.md should contain:\n{line}"
    );
}
