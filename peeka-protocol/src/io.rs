//! Blocking adapters over [`std::io::Read`] and [`std::io::Write`].

use std::io::{self, Read, Write};

use thiserror::Error;

use crate::codec::{encode_message, DecodeError, EncodeError, MessageDecoder};
use crate::frame::DEFAULT_MAX_FRAME_LEN;
use crate::message::Message;

/// Why a message could not be read from or written to a transport.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The transport failed.
    #[error("connection to the peer failed: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a valid message; close the connection.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The peer closed the connection in the middle of a frame.
    #[error("the peer closed the connection in the middle of a message (the agent may have been detached or the target may have exited)")]
    Truncated,
}

/// Reads messages from a byte stream.
///
/// ```
/// use peeka_protocol::{encode_to_vec, Cancel, Message, MessageReader};
///
/// let wire = encode_to_vec(&Message::Cancel(Cancel { stream: 9 }))?;
/// let mut reader = MessageReader::new(&wire[..]);
/// assert_eq!(reader.read_message()?, Some(Message::Cancel(Cancel { stream: 9 })));
/// assert_eq!(reader.read_message()?, None); // clean end of stream
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MessageReader<R> {
    inner: R,
    decoder: MessageDecoder,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

const READ_CHUNK: usize = 64 * 1024;

impl<R: Read> MessageReader<R> {
    /// A reader with the default frame limit.
    pub fn new(inner: R) -> Self {
        Self::with_max_frame_len(inner, DEFAULT_MAX_FRAME_LEN)
    }

    /// A reader that refuses frames longer than `max_frame_len` bytes.
    pub fn with_max_frame_len(inner: R, max_frame_len: usize) -> Self {
        Self {
            inner,
            decoder: MessageDecoder::with_max_frame_len(max_frame_len),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped transport, mutably (reading from it directly would lose
    /// buffered bytes).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Blocks until a whole message arrived; `Ok(None)` at a clean end of
    /// stream.
    ///
    /// # Errors
    /// [`TransportError`]: I/O failures (including timeouts set on the
    /// transport), invalid bytes, or a stream cut mid-frame.
    pub fn read_message(&mut self) -> Result<Option<Message>, TransportError> {
        loop {
            let mut input = &self.buf[self.start..self.end];
            let decoded = self.decoder.decode(&mut input);
            self.start = self.end - input.len();
            if let Some(message) = decoded? {
                return Ok(Some(message));
            }
            let n = loop {
                match self.inner.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            if n == 0 {
                return if self.decoder.frames().has_partial_frame() {
                    Err(TransportError::Truncated)
                } else {
                    Ok(None)
                };
            }
            self.start = 0;
            self.end = n;
        }
    }
}

impl<R: Read> Iterator for MessageReader<R> {
    type Item = Result<Message, TransportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_message().transpose()
    }
}

/// Writes messages to a byte stream, one `write_all` per message.
#[derive(Debug)]
pub struct MessageWriter<W> {
    inner: W,
    max_frame_len: usize,
    buf: Vec<u8>,
}

impl<W: Write> MessageWriter<W> {
    /// A writer with the default frame limit.
    pub fn new(inner: W) -> Self {
        Self::with_max_frame_len(inner, DEFAULT_MAX_FRAME_LEN)
    }

    /// A writer that refuses messages longer than `max_frame_len` bytes.
    pub fn with_max_frame_len(inner: W, max_frame_len: usize) -> Self {
        Self {
            inner,
            max_frame_len,
            buf: Vec::new(),
        }
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Encodes and writes one message, then flushes.
    ///
    /// # Errors
    /// [`TransportError::Encode`] for an oversized message (nothing is
    /// written), [`TransportError::Io`] when the transport fails.
    pub fn write_message(&mut self, message: &Message) -> Result<(), TransportError> {
        self.buf.clear();
        encode_message(message, self.max_frame_len, &mut self.buf)?;
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(())
    }
}
