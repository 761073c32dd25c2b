//! Property tests of the frame decoder: arbitrary bytes in arbitrary chunks never panic
//! and decode the same however they are split; valid messages survive a round trip;
//! a valid stream cut short waits for more instead of failing. The case counts keep
//! this to about a second; `fuzz/` runs the same checks for as long as you like.

use canopy_protocol::{Decoder, Message};
use proptest::prelude::*;
use rmpv::Value;

/// What a decoder made of a stream: each message's encoding (bytes, so a NaN float
/// equals itself) and whether it stopped on an error.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Vec<u8>>,
    failed: bool,
}

/// Decode `stream` fed in chunks of the given sizes (cycled), as a connection does:
/// stop at the first error.
fn decode(stream: &[u8], sizes: &[usize]) -> Outcome {
    let mut decoder = Decoder::new();
    let mut messages = Vec::new();
    let mut rest = stream;
    for n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*n).clamp(1, rest.len()));
        rest = tail;
        decoder.feed(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => messages.push(msg.encode()),
                Ok(None) => break,
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

fn text(max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>(), 0..max)
        .prop_map(String::from_iter)
        .boxed()
}

fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        any::<f32>().prop_map(Value::F32),
        text(40).prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Binary),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((text(10).prop_map(Value::from), inner), 0..8)
                .prop_map(Value::Map),
        ]
    })
    .boxed()
}

fn message() -> impl Strategy<Value = Message> {
    let method = prop_oneof![Just("hello".to_owned()), Just("list".to_owned()), text(20),];
    let params = prop::collection::vec(value(), 0..3);
    prop_oneof![
        (any::<u32>(), method.clone(), params.clone())
            .prop_map(|(id, method, params)| Message::Request { id, method, params }),
        (any::<u32>(), value(), value()).prop_map(|(id, error, result)| Message::Response {
            id,
            error,
            result
        }),
        (method, params).prop_map(|(method, params)| Message::Notification { method, params }),
    ]
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..300, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_bytes_decode_the_same_in_any_chunks(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        sizes in sizes(),
    ) {
        prop_assert_eq!(decode(&bytes, &sizes), decode(&bytes, &[bytes.len().max(1)]));
    }

    #[test]
    fn valid_messages_round_trip_in_any_chunks(
        msgs in prop::collection::vec(message(), 1..5),
        sizes in sizes(),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        let got = decode(&stream, &sizes);
        prop_assert!(!got.failed);
        let want: Vec<Vec<u8>> = msgs.iter().map(Message::encode).collect();
        prop_assert_eq!(got.messages, want);
    }

    #[test]
    fn a_valid_stream_cut_short_waits_for_more(
        msgs in prop::collection::vec(message(), 1..4),
        cut in any::<prop::sample::Index>(),
        sizes in sizes(),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        let cut = cut.index(stream.len());
        let got = decode(&stream[..cut], &sizes);
        prop_assert!(!got.failed, "a prefix of valid frames is not an error");
        let want: Vec<Vec<u8>> = msgs.iter().map(Message::encode).collect();
        prop_assert!(got.messages.len() < want.len());
        prop_assert_eq!(&got.messages[..], &want[..got.messages.len()]);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        msg in message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        sizes in sizes(),
    ) {
        let mut bytes = msg.encode();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        prop_assert_eq!(decode(&bytes, &sizes), decode(&bytes, &[bytes.len()]));
    }
}
