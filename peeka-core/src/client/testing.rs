//! What the fake agents of the socket tests send (test builds only).

use peeka_protocol::{
    EndReason, Message, Observation, ObservationBatch, Payload, Response, StreamEnd, StreamId,
};
use serde_json::{json, Value};

use super::error::ClientError;
use super::replies::StreamItem;

/// The agent's messages for a request that opens stream `stream`: the
/// response, a batch of seqs 0 to 2, a single observation of seq 3 and the
/// end; with the `(seq, data)` of each observation the stream must yield.
pub(crate) fn batch_then_single(stream: StreamId) -> (Vec<Message>, Vec<(u64, Value)>) {
    let expected: Vec<(u64, Value)> = (0..4).map(|seq| (seq, json!({ "n": seq }))).collect();
    let payload = |data: &Value| Payload::from(data.clone());
    let batch = ObservationBatch::new(
        stream,
        0,
        expected[..3]
            .iter()
            .map(|(_, data)| payload(data))
            .collect(),
    )
    .expect("a valid batch");
    let messages = vec![
        Message::Response(Response {
            id: stream,
            result: Ok(Payload::from(json!({ "stream": stream }))),
        }),
        Message::Observations(batch),
        Message::Observation(Observation {
            stream,
            seq: 3,
            data: payload(&expected[3].1),
        }),
        Message::StreamEnd(StreamEnd {
            stream,
            reason: EndReason::CountReached,
            dropped: 0,
            error: None,
        }),
    ];
    (messages, expected)
}

/// The `(seq, data)` of a stream item that must be an observation.
pub(crate) fn observed(item: Result<StreamItem<Value>, ClientError>) -> (u64, Value) {
    match item {
        Ok(StreamItem::Observation { seq, data }) => (seq, data),
        other => panic!("expected an observation, got {other:?}"),
    }
}
