//! Raw bytes through `FrameDecoder` in fuzz-chosen chunks, checked against a
//! whole-buffer reference parser written here.
//!
//! Input layout: 2 bytes choose the frame limit (big-endian, modulo 4096),
//! 1 byte `n` (modulo 8), then `n` bytes of chunk sizes (each + 1, used in
//! turn and cyclically), then the byte stream itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peeka_protocol::{FrameDecoder, FrameError};

/// What a stream holds, parsed in one go without any buffering logic.
#[derive(Debug, PartialEq)]
struct Reference {
    frames: Vec<String>,
    error: Option<FrameError>,
    /// The stream ends inside a frame (only meaningful without an error).
    partial: bool,
}

fn reference(stream: &[u8], max: usize) -> Reference {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        let Some((header, body)) = rest.split_first_chunk::<4>() else {
            let partial = !rest.is_empty();
            return Reference {
                frames,
                error: None,
                partial,
            };
        };
        let len = u32::from_be_bytes(*header);
        let error = if len == 0 {
            Some(FrameError::EmptyFrame)
        } else if len as usize > max {
            Some(FrameError::FrameTooLarge {
                len: u64::from(len),
                max,
            })
        } else {
            None
        };
        if error.is_some() {
            return Reference {
                frames,
                error,
                partial: false,
            };
        }
        let len = len as usize;
        if body.len() < len {
            return Reference {
                frames,
                error: None,
                partial: true,
            };
        }
        let (payload, after) = body.split_at(len);
        match std::str::from_utf8(payload) {
            Ok(text) => frames.push(text.to_owned()),
            Err(e) => {
                let error = Some(FrameError::InvalidUtf8 {
                    valid_up_to: e.valid_up_to(),
                });
                return Reference {
                    frames,
                    error,
                    partial: false,
                };
            }
        }
        rest = after;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = usize::from(u16::from_be_bytes([control[0], control[1]]) % 4096);
    let n = usize::from(control[2] % 8);
    if rest.len() < n {
        return;
    }
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![stream.len().max(1)]
    } else {
        sizes.iter().map(|&s| usize::from(s) + 1).collect()
    };

    let mut decoder = FrameDecoder::with_max_frame_len(max);
    let mut frames = Vec::new();
    let mut error = None;
    let mut input = stream;
    let mut turn = 0;
    'feed: while !input.is_empty() {
        let size = sizes[turn % sizes.len()].min(input.len());
        turn += 1;
        let (chunk_bytes, after) = input.split_at(size);
        input = after;
        let mut chunk = chunk_bytes;
        loop {
            let before = chunk.len();
            let result = decoder.decode(&mut chunk);
            assert!(
                decoder.buffer_capacity() <= max,
                "buffer capacity {} above the limit {max}",
                decoder.buffer_capacity()
            );
            match result {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= max);
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(chunk.is_empty(), "None with {} bytes left", chunk.len());
                    break;
                }
                Err(e) => {
                    assert_ne!(e, FrameError::Corrupt, "Corrupt before any other error");
                    assert!(decoder.is_corrupt());
                    assert!(chunk.len() <= before);
                    error = Some(e);
                    // Every further call reports corruption, whatever it gets.
                    for mut more in [chunk, input, &[][..], &[0, 0, 0, 1, b'x'][..]] {
                        assert_eq!(decoder.decode(&mut more), Err(FrameError::Corrupt));
                        assert!(decoder.buffer_capacity() <= max);
                    }
                    break 'feed;
                }
            }
        }
    }
    // An empty chunk never changes anything.
    if error.is_none() {
        let partial = decoder.has_partial_frame();
        assert_eq!(decoder.decode(&mut &[][..]), Ok(None));
        assert_eq!(decoder.has_partial_frame(), partial);
    }

    let expected = reference(stream, max);
    let partial = error.is_none() && decoder.has_partial_frame();
    let actual = Reference {
        frames,
        error,
        partial,
    };
    assert_eq!(actual, expected);
});
