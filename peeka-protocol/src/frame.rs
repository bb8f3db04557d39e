//! Framing: a 4-byte big-endian length, then that many bytes of UTF-8.
//!
//! [`FrameDecoder`] is the incremental, IO-free core that every adapter in
//! this crate (the sync [`MessageReader`](crate::MessageReader) and the
//! optional tokio codec) delegates to. It accepts byte chunks of any size,
//! buffers at most one partial frame and never reserves memory for a length
//! the peer announced before that length has been checked against the limit;
//! even then it grows the buffer only as payload bytes actually arrive.

use thiserror::Error;

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// Default upper bound of a frame's payload: 8 MiB.
///
/// Large enough for a big memory snapshot, small enough that a corrupt or
/// hostile length prefix cannot make either side allocate much.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// The buffer starts with room for this many payload bytes at most, then
/// grows (at most doubling) as bytes arrive, never past the announced length.
const INITIAL_PAYLOAD_CAPACITY: usize = 16 * 1024;

/// Why a byte stream is not a valid sequence of frames.
///
/// Every variant but [`FrameError::PayloadTooLarge`] (an encoder-side
/// refusal) leaves the decoder that reported it corrupt: the stream must be
/// closed, since its framing can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix was zero; every message has a non-empty payload.
    #[error("received a frame with length 0; the peer is not speaking the Peeka protocol (close the connection)")]
    EmptyFrame,
    /// The length prefix exceeds the configured maximum.
    #[error("received a frame of {len} bytes, above the limit of {max} bytes; close the connection, or raise the limit on both sides if the peer is trusted")]
    FrameTooLarge {
        /// The length the peer announced.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The payload is not valid UTF-8.
    #[error("frame payload is not valid UTF-8 (first invalid byte at offset {valid_up_to}); the peer is not speaking the Peeka protocol")]
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The decoder already reported an error; the stream must be closed.
    #[error("the stream is corrupt after an earlier decoding error; close the connection and open a new one")]
    Corrupt,
    /// An encoder was asked to write a payload above the limit.
    #[error("refusing to send a {len}-byte frame above the limit of {max} bytes; ask for less data (a smaller limit, depth or count)")]
    PayloadTooLarge {
        /// The payload length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Checks a length prefix against the limit and returns the payload length.
///
/// # Errors
/// [`FrameError::EmptyFrame`] for 0, [`FrameError::FrameTooLarge`] above `max`.
pub fn parse_header(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(FrameError::EmptyFrame);
    }
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(FrameError::FrameTooLarge {
            len: u64::from(len),
            max,
        }),
    }
}

/// Appends one frame holding `payload` to `out`.
///
/// # Errors
/// [`FrameError::PayloadTooLarge`] if `payload` is longer than `max` (or
/// than `u32::MAX`), [`FrameError::EmptyFrame`] if it is empty. Nothing is
/// written then.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let header = frame_header(payload.len(), max)?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// The length prefix for a payload of `len` bytes, after checking the limit.
pub(crate) fn frame_header(len: usize, max: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    if len == 0 {
        return Err(FrameError::EmptyFrame);
    }
    match u32::try_from(len) {
        Ok(len32) if len <= max => Ok(len32.to_be_bytes()),
        _ => Err(FrameError::PayloadTooLarge { len, max }),
    }
}

/// Incremental frame decoder.
///
/// Feed it byte chunks as they arrive; each call to [`decode`](Self::decode)
/// consumes bytes from the front of the chunk and returns a complete frame's
/// payload when one is available. Call it again with the rest of the chunk
/// until it returns `Ok(None)` with the chunk empty.
///
/// ```
/// use peeka_protocol::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME_LEN};
///
/// let mut wire = Vec::new();
/// encode_frame(br#"{"type":"cancel","stream":1}"#, DEFAULT_MAX_FRAME_LEN, &mut wire)?;
/// encode_frame(br#"{"type":"cancel","stream":2}"#, DEFAULT_MAX_FRAME_LEN, &mut wire)?;
///
/// let mut decoder = FrameDecoder::new();
/// let mut frames = Vec::new();
/// // Any chunking works; here three bytes at a time.
/// for chunk in wire.chunks(3) {
///     let mut input = chunk;
///     while let Some(payload) = decoder.decode(&mut input)? {
///         frames.push(payload);
///     }
/// }
/// assert_eq!(frames[1], r#"{"type":"cancel","stream":2}"#);
/// # Ok::<(), peeka_protocol::FrameError>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_len: usize,
    header: [u8; HEADER_LEN],
    header_filled: usize,
    /// Payload length of the frame being read, once its header is complete.
    expected: Option<usize>,
    payload: Vec<u8>,
    corrupt: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with the [`DEFAULT_MAX_FRAME_LEN`] limit.
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A decoder that refuses frames longer than `max_frame_len` bytes.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            max_frame_len,
            header: [0; HEADER_LEN],
            header_filled: 0,
            expected: None,
            payload: Vec::new(),
            corrupt: false,
        }
    }

    /// The configured payload limit in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Whether an earlier error made the stream unusable.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    /// Whether a frame has been started but not completed.
    ///
    /// At end of stream this tells a clean close (`false`) from a truncated
    /// frame (`true`).
    pub fn has_partial_frame(&self) -> bool {
        self.header_filled > 0
    }

    /// Marks the stream corrupt: a layer above found a frame it cannot use.
    pub(crate) fn poison(&mut self) {
        self.corrupt = true;
        self.payload = Vec::new();
    }

    /// Bytes of memory the decoder currently holds for payloads.
    ///
    /// Never more than the limit, whatever the peer announced.
    pub fn buffer_capacity(&self) -> usize {
        self.payload.capacity()
    }

    /// Consumes bytes from the front of `input` and returns the next complete
    /// frame's payload, or `None` once `input` is exhausted mid-frame.
    ///
    /// # Errors
    /// A [`FrameError`] for an invalid length prefix or payload. After an
    /// error the decoder is corrupt and every later call returns
    /// [`FrameError::Corrupt`].
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<String>, FrameError> {
        if self.corrupt {
            return Err(FrameError::Corrupt);
        }
        let result = self.decode_inner(input);
        if result.is_err() {
            self.poison();
        }
        result
    }

    fn decode_inner(&mut self, input: &mut &[u8]) -> Result<Option<String>, FrameError> {
        let expected = match self.expected {
            Some(expected) => expected,
            None => {
                let take = (HEADER_LEN - self.header_filled).min(input.len());
                let (head, rest) = input.split_at(take);
                self.header[self.header_filled..self.header_filled + take].copy_from_slice(head);
                self.header_filled += take;
                *input = rest;
                if self.header_filled < HEADER_LEN {
                    return Ok(None);
                }
                let expected = parse_header(self.header, self.max_frame_len)?;
                self.expected = Some(expected);
                expected
            }
        };

        let missing = expected - self.payload.len();
        let take = missing.min(input.len());
        let (body, rest) = input.split_at(take);
        self.grow_for(take, expected);
        self.payload.extend_from_slice(body);
        *input = rest;
        if self.payload.len() < expected {
            return Ok(None);
        }

        self.expected = None;
        self.header_filled = 0;
        let payload = std::mem::take(&mut self.payload);
        String::from_utf8(payload)
            .map(Some)
            .map_err(|e| FrameError::InvalidUtf8 {
                valid_up_to: e.utf8_error().valid_up_to(),
            })
    }

    /// Makes room for `extra` more payload bytes, growing geometrically but
    /// never past the frame's announced (and already checked) length.
    fn grow_for(&mut self, extra: usize, expected: usize) {
        let needed = self.payload.len() + extra;
        if needed <= self.payload.capacity() {
            return;
        }
        let target = needed
            .max(self.payload.capacity() * 2)
            .max(INITIAL_PAYLOAD_CAPACITY)
            .min(expected);
        self.payload.reserve_exact(target - self.payload.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(payload, DEFAULT_MAX_FRAME_LEN, &mut out).unwrap();
        out
    }

    fn decode_all(decoder: &mut FrameDecoder, bytes: &[u8]) -> Result<Vec<String>, FrameError> {
        let mut input = bytes;
        let mut out = Vec::new();
        while let Some(f) = decoder.decode(&mut input)? {
            out.push(f);
        }
        assert!(input.is_empty());
        Ok(out)
    }

    #[test]
    fn decodes_frames_split_one_byte_at_a_time() {
        let mut wire = frame(b"hello");
        wire.extend(frame("wörld".as_bytes()));
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for byte in wire.chunks(1) {
            got.extend(decode_all(&mut decoder, byte).unwrap());
        }
        assert_eq!(got, ["hello", "wörld"]);
        assert!(!decoder.has_partial_frame());
    }

    #[test]
    fn huge_length_prefix_is_refused_without_growing_the_buffer() {
        let max = 1024;
        let mut decoder = FrameDecoder::with_max_frame_len(max);
        let mut wire = vec![0xFF, 0xFF, 0xFF, 0xFF];
        wire.extend(std::iter::repeat_n(b'x', 4096));
        let err = decode_all(&mut decoder, &wire).unwrap_err();
        assert_eq!(
            err,
            FrameError::FrameTooLarge {
                len: 0xFFFF_FFFF,
                max
            }
        );
        assert!(decoder.buffer_capacity() <= max);
        assert!(decoder.is_corrupt());
        assert_eq!(decoder.decode(&mut &b"more"[..]), Err(FrameError::Corrupt));
    }

    #[test]
    fn buffer_never_exceeds_announced_length() {
        let payload = vec![b'a'; 20_000];
        let wire = frame(&payload);
        let mut decoder = FrameDecoder::new();
        let mut input = &wire[..HEADER_LEN + 17_000];
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert!(decoder.buffer_capacity() <= payload.len());
        let mut rest = &wire[HEADER_LEN + 17_000..];
        assert_eq!(decoder.decode(&mut rest).unwrap().unwrap().len(), 20_000);
    }

    #[test]
    fn zero_length_is_an_error() {
        let mut decoder = FrameDecoder::new();
        assert_eq!(
            decoder.decode(&mut &[0u8, 0, 0, 0][..]),
            Err(FrameError::EmptyFrame)
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut decoder = FrameDecoder::new();
        let wire = frame(&[b'o', b'k', 0xC3, 0x28]);
        assert_eq!(
            decode_all(&mut decoder, &wire),
            Err(FrameError::InvalidUtf8 { valid_up_to: 2 })
        );
    }

    #[test]
    fn truncated_header_is_a_partial_frame() {
        let mut decoder = FrameDecoder::new();
        assert_eq!(decoder.decode(&mut &[0u8, 0][..]), Ok(None));
        assert!(decoder.has_partial_frame());
    }

    #[test]
    fn encoder_refuses_oversized_and_empty_payloads() {
        let mut out = Vec::new();
        assert_eq!(
            encode_frame(&[1; 11], 10, &mut out),
            Err(FrameError::PayloadTooLarge { len: 11, max: 10 })
        );
        assert_eq!(encode_frame(&[], 10, &mut out), Err(FrameError::EmptyFrame));
        assert!(out.is_empty());
    }
}
