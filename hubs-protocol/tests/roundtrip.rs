//! Property tests: arbitrary messages round-trip through both protocols, in any chunking,
//! and arbitrary bytes never make the decoder panic or spin.

use hubs_protocol::{
    Ack, CancelInvocation, Close, Completion, DecodeError, Headers, HubMessage, Invocation,
    Outcome, Protocol, Sequence, StreamInvocation, StreamItem, Value,
};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        // Quarters are exact in binary, so they survive a text round trip too.
        (-4_000_000i32..4_000_000).prop_map(|n| serde_json::Value::from(f64::from(n) / 4.0)),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn value(protocol: Protocol) -> impl Strategy<Value = Value> {
    json_value().prop_map(move |v| Value::serialize(protocol, &v).expect("serializes"))
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::btree_map(".{0,10}", ".{0,10}", 0..3)
}

fn id() -> impl Strategy<Value = String> {
    ".{1,12}"
}

fn message(protocol: Protocol) -> impl Strategy<Value = HubMessage> {
    let args = move || prop::collection::vec(value(protocol), 0..4);
    let ids = || prop::collection::vec(id(), 0..3);
    prop_oneof![
        (headers(), prop::option::of(id()), id(), args(), ids()).prop_map(
            |(headers, invocation_id, target, arguments, stream_ids)| {
                HubMessage::Invocation(Invocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                })
            }
        ),
        (headers(), id(), value(protocol)).prop_map(|(headers, invocation_id, item)| {
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item,
            })
        }),
        (
            headers(),
            id(),
            prop_oneof![
                Just(Outcome::Void),
                value(protocol).prop_map(Outcome::Result),
                ".{0,30}".prop_map(Outcome::Error),
            ]
        )
            .prop_map(|(headers, invocation_id, outcome)| {
                HubMessage::Completion(Completion {
                    headers,
                    invocation_id,
                    outcome,
                })
            }),
        (headers(), id(), id(), args(), ids()).prop_map(
            |(headers, invocation_id, target, arguments, stream_ids)| {
                HubMessage::StreamInvocation(StreamInvocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                })
            }
        ),
        (headers(), id()).prop_map(|(headers, invocation_id)| {
            HubMessage::CancelInvocation(CancelInvocation {
                headers,
                invocation_id,
            })
        }),
        Just(HubMessage::Ping),
        (prop::option::of(".{0,30}"), any::<bool>()).prop_map(|(error, allow_reconnect)| {
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }),
        any::<u64>().prop_map(|sequence_id| HubMessage::Ack(Ack { sequence_id })),
        any::<u64>().prop_map(|sequence_id| HubMessage::Sequence(Sequence { sequence_id })),
    ]
}

fn protocol_and_messages() -> impl Strategy<Value = (Protocol, Vec<HubMessage>)> {
    prop_oneof![Just(Protocol::Json), Just(Protocol::MessagePack)]
        .prop_flat_map(|p| (Just(p), prop::collection::vec(message(p), 1..6)))
}

/// Feeds `bytes` to a decoder in chunks of the given sizes (cycled) and collects the results.
fn decode_chunked(
    protocol: Protocol,
    bytes: &[u8],
    chunks: &[usize],
    max: Option<usize>,
) -> Vec<Result<HubMessage, DecodeError>> {
    let mut decoder = protocol.decoder().with_max_message_size(max);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        // Each message consumes at least one byte, so this loop is bounded by the input.
        for _ in 0..=bytes.len() {
            match decoder.next_message() {
                Ok(Some(message)) => out.push(Ok(message)),
                Ok(None) => break,
                Err(error) => {
                    let fatal = error.is_fatal();
                    out.push(Err(error));
                    if fatal {
                        return out;
                    }
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_round_trip_in_any_chunking(
        (protocol, messages) in protocol_and_messages(),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut bytes = Vec::new();
        for message in &messages {
            protocol.encode(message, &mut bytes).expect("encodes");
        }
        let decoded = decode_chunked(protocol, &bytes, &chunks, None);
        let expected: Vec<_> = messages.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn values_bind_back_to_what_was_serialized(protocol in prop_oneof![Just(Protocol::Json), Just(Protocol::MessagePack)], v in json_value()) {
        let value = Value::serialize(protocol, &v).expect("serializes");
        let back: serde_json::Value = value.deserialize().expect("binds");
        prop_assert_eq!(back, v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        protocol in prop_oneof![Just(Protocol::Json), Just(Protocol::MessagePack)],
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        chunks in prop::collection::vec(1usize..32, 1..6),
        max in prop::option::of(1usize..256),
    ) {
        let _ = decode_chunked(protocol, &bytes, &chunks, max);
    }

    #[test]
    fn mutated_messages_never_panic(
        (protocol, messages) in protocol_and_messages(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        chunks in prop::collection::vec(1usize..16, 1..4),
    ) {
        let mut bytes = Vec::new();
        for message in &messages {
            protocol.encode(message, &mut bytes).expect("encodes");
        }
        for (index, byte) in flips {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode_chunked(protocol, &bytes, &chunks, Some(1 << 16));
    }
}
