//! Messages over frames: the IO-free message decoder and encoder.

use thiserror::Error;

use crate::frame::{frame_header, FrameDecoder, FrameError, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
use crate::message::{Message, MessageError};

/// Why incoming bytes could not be turned into a message.
///
/// Any of these leaves the decoder corrupt: close the connection.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The framing is invalid.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame's text is not a valid message.
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Why a message could not be written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message exceeds the frame limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Incremental decoder of whole messages: a [`FrameDecoder`] plus
/// [`Message::parse`].
///
/// ```
/// use peeka_protocol::{encode_message, Cancel, Message, MessageDecoder, DEFAULT_MAX_FRAME_LEN};
///
/// let mut wire = Vec::new();
/// encode_message(&Message::Cancel(Cancel { stream: 3 }), DEFAULT_MAX_FRAME_LEN, &mut wire)?;
///
/// let mut decoder = MessageDecoder::new();
/// let mut input = &wire[..];
/// assert_eq!(decoder.decode(&mut input)?, Some(Message::Cancel(Cancel { stream: 3 })));
/// assert_eq!(decoder.decode(&mut input)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MessageDecoder {
    frames: FrameDecoder,
}

impl MessageDecoder {
    /// A decoder with the default frame limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses frames longer than `max_frame_len` bytes.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            frames: FrameDecoder::with_max_frame_len(max_frame_len),
        }
    }

    /// The underlying frame decoder (limit, buffer and partial-frame state).
    pub fn frames(&self) -> &FrameDecoder {
        &self.frames
    }

    /// Consumes bytes from the front of `input` and returns the next complete
    /// message, or `None` once `input` is exhausted mid-frame.
    ///
    /// # Errors
    /// A [`DecodeError`]; every later call then returns
    /// [`FrameError::Corrupt`].
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        match self.frames.decode(input)? {
            Some(text) => Message::parse(&text).map(Some).map_err(|e| {
                self.frames.poison();
                e.into()
            }),
            None => Ok(None),
        }
    }
}

/// Appends `message` as one frame to `out`, serializing straight into the
/// buffer.
///
/// # Errors
/// [`EncodeError::Frame`] when the message is longer than `max_frame_len`;
/// `out` is left as it was.
pub fn encode_message(
    message: &Message,
    max_frame_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    // Writing into a Vec cannot fail, and messages always serialize.
    if serde_json::to_writer(&mut *out, message).is_err() {
        unreachable!("messages always serialize into a Vec");
    }
    match frame_header(out.len() - start - HEADER_LEN, max_frame_len) {
        Ok(header) => {
            out[start..start + HEADER_LEN].copy_from_slice(&header);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e.into())
        }
    }
}

/// [`encode_message`] into a new buffer with the default limit.
///
/// # Errors
/// As [`encode_message`].
pub fn encode_to_vec(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_message(message, DEFAULT_MAX_FRAME_LEN, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_frame, Cancel};

    #[test]
    fn invalid_json_corrupts_the_stream() {
        let mut wire = Vec::new();
        encode_frame(b"{not json", DEFAULT_MAX_FRAME_LEN, &mut wire).unwrap();
        encode_message(
            &Message::Cancel(Cancel { stream: 1 }),
            DEFAULT_MAX_FRAME_LEN,
            &mut wire,
        )
        .unwrap();
        let mut decoder = MessageDecoder::new();
        let mut input = &wire[..];
        assert!(matches!(
            decoder.decode(&mut input),
            Err(DecodeError::Message(MessageError::InvalidJson(_)))
        ));
        assert!(matches!(
            decoder.decode(&mut input),
            Err(DecodeError::Frame(FrameError::Corrupt))
        ));
    }

    #[test]
    fn oversized_message_is_refused_and_buffer_untouched() {
        let mut out = b"keep".to_vec();
        let err = encode_message(&Message::Cancel(Cancel { stream: 1 }), 10, &mut out).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::Frame(FrameError::PayloadTooLarge { max: 10, .. })
        ));
        assert_eq!(out, b"keep");
    }
}
