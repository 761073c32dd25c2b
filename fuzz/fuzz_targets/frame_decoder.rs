//! The msgpack-RPC frame decoder on arbitrary bytes in arbitrary chunks.
//!
//! Checks: it never panics; feeding the bytes in chunks yields exactly what feeding them
//! at once does (messages, then the same end: waiting or an error); and every message it
//! yields re-encodes to bytes that decode to the same message.

#![no_main]

use canopy_protocol::{Decoder, FrameError, Message};
use libfuzzer_sys::fuzz_target;

/// The first bytes of an input pick the chunk sizes; the rest is the stream.
const SPLIT_BYTES: usize = 4;

/// What a decoder made of a stream: the messages' encodings (compared as bytes, so a
/// NaN float still equals itself), and whether it stopped on an error.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Vec<u8>>,
    failed: bool,
}

fn decode(chunks: impl Iterator<Item = Vec<u8>>) -> Outcome {
    let mut decoder = Decoder::new();
    let mut messages = Vec::new();
    for chunk in chunks {
        decoder.feed(&chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    assert_roundtrips(&msg);
                    messages.push(msg.encode());
                }
                Ok(None) => break,
                // The host closes the connection here, so nothing after it matters.
                Err(_) => {
                    return Outcome {
                        messages,
                        failed: true,
                    };
                }
            }
        }
    }
    Outcome {
        messages,
        failed: false,
    }
}

fn assert_roundtrips(msg: &Message) {
    let bytes = msg.encode();
    let mut decoder = Decoder::new();
    decoder.feed(&bytes);
    let again = match decoder.next_message() {
        // A bare-map param at the deepest nesting accepted is re-encoded inside an
        // array: one level deeper than accepted. The host never re-encodes a request.
        Err(FrameError::Malformed(e)) if e.starts_with("nested deeper") => return,
        other => other,
    };
    let again = again
        .unwrap_or_else(|e| panic!("{msg:?} re-encoded does not decode: {e}"))
        .unwrap_or_else(|| panic!("{msg:?} re-encoded is incomplete"));
    assert_eq!(again.encode(), bytes, "{msg:?} changed in a round trip");
    assert!(matches!(decoder.next_message(), Ok(None)));
}

fuzz_target!(|data: &[u8]| {
    let (split, stream) = data.split_at(data.len().min(SPLIT_BYTES));
    let whole = decode(std::iter::once(stream.to_vec()));
    let sizes: Vec<usize> = split.iter().map(|b| 1 + usize::from(*b)).collect();
    let mut rest = stream;
    let chunks = sizes.into_iter().cycle().map_while(move |n| {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(chunk.to_vec())
    });
    let chunked = if split.is_empty() {
        decode(std::iter::empty())
    } else {
        decode(chunks)
    };
    assert_eq!(whole, chunked, "chunking changed what the bytes decode to");
});
