//! Byte-exact tests of the MessagePack hub protocol, from the examples in `protocol.md` §6.

use hubs_protocol::{
    Ack, CancelInvocation, Close, Completion, DecodeError, Headers, HubMessage, Invocation,
    Protocol, Sequence, StreamInvocation, StreamItem, Value,
};

fn v(bytes: &[u8]) -> Value {
    Value::from_raw(Protocol::MessagePack, bytes.to_vec())
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect()
}

fn encode(message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    Protocol::MessagePack
        .encode(message, &mut out)
        .expect("encodes");
    out
}

fn decode(bytes: &[u8]) -> Result<Option<HubMessage>, DecodeError> {
    let mut decoder = Protocol::MessagePack.decoder();
    decoder.push(bytes);
    decoder.next_message()
}

fn exact(message: HubMessage, bytes: &str) {
    let bytes = hex(bytes);
    assert_eq!(encode(&message), bytes, "{message:?}");
    assert_eq!(decode(&bytes), Ok(Some(message)));
}

#[test]
fn examples_from_the_protocol() {
    exact(
        HubMessage::Invocation(Invocation {
            target: "Send".into(),
            arguments: vec![v(&[0x2a])],
            ..Default::default()
        }),
        "0C 96 01 80 C0 A4 53 65 6E 64 91 2A 90",
    );
    exact(
        HubMessage::Completion(Completion::void("1")),
        "06 94 03 80 A1 31 02",
    );
    exact(
        HubMessage::Completion(Completion::result("1", v(&[0x2a]))),
        "07 95 03 80 A1 31 03 2A",
    );
    exact(HubMessage::Close(Close::default()), "04 93 07 C0 C2");
    exact(HubMessage::Ping, "02 91 06");
}

#[test]
fn invocation_with_id_streams_and_headers() {
    let mut headers = Headers::new();
    headers.insert("a".into(), "b".into());
    exact(
        HubMessage::Invocation(Invocation {
            headers,
            invocation_id: Some("7".into()),
            target: "Up".into(),
            arguments: vec![],
            stream_ids: vec!["8".into()],
        }),
        "10 96 01 81 A1 61 A1 62 A1 37 A2 55 70 90 91 A1 38",
    );
}

#[test]
fn five_element_invocation_from_the_ts_client() {
    // [1, {}, "0", "Echo", ["x"]]
    let message = decode(&hex("0D 95 01 80 A1 30 A4 45 63 68 6F 91 A1 78"));
    assert_eq!(
        message,
        Ok(Some(HubMessage::Invocation(Invocation {
            invocation_id: Some("0".into()),
            target: "Echo".into(),
            arguments: vec![v(&[0xa1, 0x78])],
            ..Default::default()
        })))
    );
}

#[test]
fn stream_messages() {
    exact(
        HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "3".into(),
            target: "C".into(),
            arguments: vec![v(&[0x0a])],
            ..Default::default()
        }),
        "0A 96 04 80 A1 33 A1 43 91 0A 90",
    );
    exact(
        HubMessage::StreamItem(StreamItem {
            headers: Headers::new(),
            invocation_id: "3".into(),
            item: Value::null(Protocol::MessagePack),
        }),
        "06 94 02 80 A1 33 C0",
    );
    exact(
        HubMessage::CancelInvocation(CancelInvocation {
            headers: Headers::new(),
            invocation_id: "3".into(),
        }),
        "05 93 05 80 A1 33",
    );
}

#[test]
fn error_and_null_completions() {
    exact(
        HubMessage::Completion(Completion::error("1", "boom")),
        "0B 95 03 80 A1 31 01 A4 62 6F 6F 6D",
    );
    exact(
        HubMessage::Completion(Completion::result("1", Value::null(Protocol::MessagePack))),
        "07 95 03 80 A1 31 03 C0",
    );
}

#[test]
fn close_ack_sequence() {
    exact(
        HubMessage::Close(Close {
            error: Some("x".into()),
            allow_reconnect: true,
        }),
        "05 93 07 A1 78 C3",
    );
    // The TS client writes [7, nil].
    assert_eq!(
        decode(&hex("03 92 07 C0")),
        Ok(Some(HubMessage::Close(Close::default())))
    );
    exact(HubMessage::Ack(Ack { sequence_id: 12 }), "03 92 08 0C");
    exact(
        HubMessage::Sequence(Sequence { sequence_id: 300 }),
        "05 92 09 CD 01 2C",
    );
}

#[test]
fn length_prefix_of_300() {
    let message = HubMessage::Completion(Completion::error("1", "e".repeat(300 - 9)));
    let bytes = encode(&message);
    assert_eq!(&bytes[..2], &[0xac, 0x02]);
    assert_eq!(bytes.len(), 302);
    assert_eq!(decode(&bytes), Ok(Some(message)));
}

#[test]
fn extra_trailing_elements_are_tolerated() {
    // [6, "extra"] and a Completion with a sixth element.
    assert_eq!(decode(&hex("04 92 06 A1 78")), Ok(Some(HubMessage::Ping)));
    assert_eq!(
        decode(&hex("08 96 03 80 A1 31 03 2A C0")),
        Ok(Some(HubMessage::Completion(Completion::result(
            "1",
            v(&[0x2a])
        ))))
    );
}

#[test]
fn nested_values_and_extensions_are_sliced_whole() {
    // Arguments: {"a": [1, {"b": nil}]}, a bin8, a timestamp ext (-1) of 8 bytes, 1.5 (f64).
    let args = "94 81 A1 61 92 01 81 A1 62 C0 C4 02 01 02 D7 FF 00 00 00 00 00 00 00 01 CB 3F F8 00 00 00 00 00 00";
    let body = format!("96 01 80 C0 A1 54 {args} 90");
    let body = hex(&body);
    let mut framed = vec![body.len() as u8];
    framed.extend_from_slice(&body);
    let Ok(Some(HubMessage::Invocation(invocation))) = decode(&framed) else {
        panic!("expected an invocation");
    };
    let raw: Vec<Vec<u8>> = invocation
        .arguments
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    assert_eq!(
        raw,
        [
            hex("81 A1 61 92 01 81 A1 62 C0"),
            hex("C4 02 01 02"),
            hex("D7 FF 00 00 00 00 00 00 00 01"),
            hex("CB 3F F8 00 00 00 00 00 00"),
        ]
    );
    assert_eq!(invocation.arguments[3].deserialize::<f64>(), Ok(1.5));
}

#[test]
fn structs_serialize_as_maps() {
    #[derive(serde::Serialize)]
    #[allow(non_snake_case)]
    struct Custom {
        Name: &'static str,
        Value: i32,
    }
    let value = Value::serialize(
        Protocol::MessagePack,
        &Custom {
            Name: "n",
            Value: 1,
        },
    )
    .unwrap();
    assert_eq!(
        value.as_bytes(),
        hex("82 A4 4E 61 6D 65 A1 6E A5 56 61 6C 75 65 01")
    );
}

#[test]
fn distinct_errors() {
    // Not an array.
    assert!(matches!(
        decode(&hex("01 06")),
        Err(DecodeError::Malformed(_))
    ));
    // Unknown message type 42.
    assert_eq!(
        decode(&hex("02 91 2A")),
        Err(DecodeError::UnknownMessageType(42))
    );
    // StreamItem with only 3 elements.
    assert!(matches!(
        decode(&hex("04 93 02 80 A0")),
        Err(DecodeError::Malformed(_))
    ));
    // Headers that are not a map.
    assert!(matches!(
        decode(&hex("05 93 05 90 A1 33")),
        Err(DecodeError::Malformed(_))
    ));
    // A string argument that claims more bytes than there are.
    assert!(matches!(
        decode(&hex("0A 96 01 80 C0 A1 54 91 A5 61 90")),
        Err(DecodeError::Malformed(_))
    ));
    // Reserved marker 0xC1 inside a value.
    assert!(matches!(
        decode(&hex("08 96 01 80 C0 A1 54 91 C1")),
        Err(DecodeError::Malformed(_))
    ));
    // Completion with an unknown result kind.
    assert!(matches!(
        decode(&hex("06 94 03 80 A1 31 09")),
        Err(DecodeError::Malformed(_))
    ));
    // StreamInvocation with a nil id.
    assert_eq!(
        decode(&hex("08 96 04 80 C0 A1 43 90 90")),
        Err(DecodeError::MissingField {
            message_type: 4,
            field: "invocationId"
        })
    );
}

#[test]
fn recovers_after_a_bad_message() {
    let mut decoder = Protocol::MessagePack.decoder();
    decoder.push(&hex("02 91 2A 01 06 02 91 06"));
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::UnknownMessageType(42))
    );
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
    assert_eq!(decoder.next_message(), Ok(None));
}

#[test]
fn bad_length_prefixes_are_fatal() {
    // Six continuation bytes; a 5-byte prefix above 2^31 - 1.
    for bytes in [hex("80 80 80 80 80 80"), hex("FF FF FF FF 08")] {
        let mut decoder = Protocol::MessagePack.decoder();
        decoder.push(&bytes);
        let error = decoder.next_message().unwrap_err();
        assert_eq!(error, DecodeError::BadLengthPrefix);
        assert!(error.is_fatal());
    }
}

#[test]
fn oversized_message_is_refused_before_its_body_arrives() {
    let mut decoder = Protocol::MessagePack
        .decoder()
        .with_max_message_size(Some(100));
    decoder.push(&[0xe8, 0x07]); // 1000
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::TooLarge { max: 100 })
    );
}

#[test]
fn split_over_reads() {
    let bytes = hex("0C 96 01 80 C0 A4 53 65 6E 64 91 2A 90 02 91 06");
    let mut decoder = Protocol::MessagePack.decoder();
    let mut messages = Vec::new();
    for chunk in bytes.chunks(3) {
        decoder.push(chunk);
        while let Some(message) = decoder.next_message().unwrap() {
            messages.push(message);
        }
    }
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1], HubMessage::Ping);
}
