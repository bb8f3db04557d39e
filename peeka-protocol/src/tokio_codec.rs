//! A [`tokio_util::codec`] Decoder/Encoder over the same core as the sync
//! adapters (enabled by the `tokio` feature).

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{encode_message, MessageDecoder};
use crate::frame::DEFAULT_MAX_FRAME_LEN;
use crate::io::TransportError;
use crate::message::Message;

/// Frames [`Message`]s for `tokio_util::codec::Framed`.
///
/// An `Err` from `decode` means the stream is corrupt: drop the `Framed`.
#[derive(Debug)]
pub struct MessageCodec {
    decoder: MessageDecoder,
    max_frame_len: usize,
    scratch: Vec<u8>,
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageCodec {
    /// A codec with the default frame limit.
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A codec that refuses frames longer than `max_frame_len` bytes in
    /// either direction.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            decoder: MessageDecoder::with_max_frame_len(max_frame_len),
            max_frame_len,
            scratch: Vec::new(),
        }
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, TransportError> {
        let mut input = &src[..];
        let decoded = self.decoder.decode(&mut input);
        let consumed = src.len() - input.len();
        src.advance(consumed);
        Ok(decoded?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, TransportError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None if self.decoder.frames().has_partial_frame() => Err(TransportError::Truncated),
            None => Ok(None),
        }
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = TransportError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), TransportError> {
        self.scratch.clear();
        encode_message(message, self.max_frame_len, &mut self.scratch)?;
        dst.put_slice(&self.scratch);
        Ok(())
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = TransportError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), TransportError> {
        self.encode(&message, dst)
    }
}
