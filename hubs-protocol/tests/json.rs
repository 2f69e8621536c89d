//! Byte-exact tests of the JSON hub protocol, from the examples in `protocol.md` §5.

use hubs_protocol::{
    Ack, CancelInvocation, Close, Completion, DecodeError, Headers, HubMessage, Invocation,
    Protocol, Sequence, StreamInvocation, StreamItem, Value,
};

fn v(json: &str) -> Value {
    Value::from_raw(Protocol::Json, json.as_bytes().to_vec())
}

fn encode(message: &HubMessage) -> String {
    let mut out = Vec::new();
    Protocol::Json.encode(message, &mut out).expect("encodes");
    String::from_utf8(out).expect("utf-8")
}

fn decode_all(bytes: &[u8]) -> Vec<Result<HubMessage, DecodeError>> {
    let mut decoder = Protocol::Json.decoder();
    decoder.push(bytes);
    let mut out = Vec::new();
    loop {
        match decoder.next_message() {
            Ok(Some(message)) => out.push(Ok(message)),
            Ok(None) => return out,
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

fn decode(text: &str) -> Result<HubMessage, DecodeError> {
    let mut results = decode_all(text.as_bytes());
    assert_eq!(results.len(), 1, "{text}");
    results.remove(0)
}

/// Encodes `message`, checks the exact text, and checks that the text decodes back.
fn exact(message: HubMessage, text: &str) {
    assert_eq!(encode(&message), text);
    assert_eq!(decode(text), Ok(message));
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn invocation_blocking() {
    exact(
        HubMessage::Invocation(Invocation {
            invocation_id: Some("0".into()),
            target: "SendMessage".into(),
            arguments: vec![v("\"ann\""), v("\"hi\"")],
            ..Default::default()
        }),
        "{\"type\":1,\"invocationId\":\"0\",\"target\":\"SendMessage\",\"arguments\":[\"ann\",\"hi\"]}\x1e",
    );
}

#[test]
fn invocation_non_blocking_with_object_argument() {
    exact(
        HubMessage::Invocation(Invocation {
            target: "Notify".into(),
            arguments: vec![v("{\"id\":3,\"text\":\"x\"}")],
            ..Default::default()
        }),
        "{\"type\":1,\"target\":\"Notify\",\"arguments\":[{\"id\":3,\"text\":\"x\"}]}\x1e",
    );
}

#[test]
fn invocation_with_stream_ids_and_headers() {
    exact(
        HubMessage::Invocation(Invocation {
            invocation_id: Some("1".into()),
            target: "Upload".into(),
            arguments: vec![],
            stream_ids: vec!["2".into()],
            headers: headers(&[("traceparent", "00-1")]),
        }),
        "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Upload\",\"arguments\":[],\"streamIds\":[\"2\"],\"headers\":{\"traceparent\":\"00-1\"}}\x1e",
    );
}

#[test]
fn invocation_empty_id_is_non_blocking() {
    let message =
        decode("{\"type\":1,\"invocationId\":\"\",\"target\":\"A\",\"arguments\":[]}\x1e");
    assert!(matches!(
        message,
        Ok(HubMessage::Invocation(Invocation {
            invocation_id: None,
            ..
        }))
    ));
}

#[test]
fn stream_invocation() {
    exact(
        HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "3".into(),
            target: "Counter".into(),
            arguments: vec![v("10")],
            ..Default::default()
        }),
        "{\"type\":4,\"invocationId\":\"3\",\"target\":\"Counter\",\"arguments\":[10]}\x1e",
    );
}

#[test]
fn stream_item_including_null() {
    exact(
        HubMessage::StreamItem(StreamItem {
            headers: Headers::new(),
            invocation_id: "3".into(),
            item: v("7"),
        }),
        "{\"type\":2,\"invocationId\":\"3\",\"item\":7}\x1e",
    );
    exact(
        HubMessage::StreamItem(StreamItem {
            headers: Headers::new(),
            invocation_id: "3".into(),
            item: Value::null(Protocol::Json),
        }),
        "{\"type\":2,\"invocationId\":\"3\",\"item\":null}\x1e",
    );
}

#[test]
fn completions() {
    exact(
        HubMessage::Completion(Completion::result("0", Value::null(Protocol::Json))),
        "{\"type\":3,\"invocationId\":\"0\",\"result\":null}\x1e",
    );
    exact(
        HubMessage::Completion(Completion::void("3")),
        "{\"type\":3,\"invocationId\":\"3\"}\x1e",
    );
    exact(
        HubMessage::Completion(Completion::error(
            "4",
            "An unexpected error occurred invoking 'Add' on the server.",
        )),
        "{\"type\":3,\"invocationId\":\"4\",\"error\":\"An unexpected error occurred invoking 'Add' on the server.\"}\x1e",
    );
    exact(
        HubMessage::Completion(Completion::result("5", v("{\"a\":[1,2]}"))),
        "{\"type\":3,\"invocationId\":\"5\",\"result\":{\"a\":[1,2]}}\x1e",
    );
}

#[test]
fn completion_with_result_and_error_is_malformed() {
    assert!(matches!(
        decode("{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"x\"}\x1e"),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn cancel_ping_close_ack_sequence() {
    exact(
        HubMessage::CancelInvocation(CancelInvocation {
            headers: Headers::new(),
            invocation_id: "3".into(),
        }),
        "{\"type\":5,\"invocationId\":\"3\"}\x1e",
    );
    exact(HubMessage::Ping, "{\"type\":6}\x1e");
    exact(HubMessage::Close(Close::default()), "{\"type\":7}\x1e");
    exact(
        HubMessage::Close(Close {
            error: Some("Connection closed with an error.".into()),
            allow_reconnect: true,
        }),
        "{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\x1e",
    );
    exact(
        HubMessage::Ack(Ack { sequence_id: 12 }),
        "{\"type\":8,\"sequenceId\":12}\x1e",
    );
    exact(
        HubMessage::Sequence(Sequence { sequence_id: 5 }),
        "{\"type\":9,\"sequenceId\":5}\x1e",
    );
}

#[test]
fn property_order_and_unknown_properties_do_not_matter() {
    let message = decode(
        "{\"arguments\":[1],\"extra\":{\"deep\":[true]},\"target\":\"T\",\"type\":1,\"invocationId\":\"9\"}\x1e",
    );
    assert_eq!(
        message,
        Ok(HubMessage::Invocation(Invocation {
            invocation_id: Some("9".into()),
            target: "T".into(),
            arguments: vec![v("1")],
            ..Default::default()
        }))
    );
}

#[test]
fn several_messages_in_one_chunk() {
    let results = decode_all(b"{\"type\":6}\x1e{\"type\":7}\x1e{\"type\":6}\x1e");
    assert_eq!(
        results,
        [
            Ok(HubMessage::Ping),
            Ok(HubMessage::Close(Close::default())),
            Ok(HubMessage::Ping)
        ]
    );
}

#[test]
fn arguments_keep_their_raw_text() {
    let Ok(HubMessage::Invocation(invocation)) = decode(
        "{\"type\":1,\"target\":\"E\",\"arguments\":[\"a\\u0041\\n\", 1.50 , {\"k\" : null}]}\x1e",
    ) else {
        panic!("expected an invocation");
    };
    let raw: Vec<&[u8]> = invocation.arguments.iter().map(Value::as_bytes).collect();
    assert_eq!(raw, [&b"\"a\\u0041\\n\""[..], b"1.50", b"{\"k\" : null}"]);
    assert_eq!(
        invocation.arguments[0].deserialize::<String>(),
        Ok("aA\n".to_owned())
    );
}

#[test]
fn errors_are_distinct_and_recoverable() {
    let results = decode_all(
        b"{\"type\":1,\"target\":\"A\"\x1e\
          {\"type\":99,\"x\":1}\x1e\
          {\"type\":1,\"target\":\"A\"}\x1e\
          {\"invocationId\":\"1\"}\x1e\
          [1,\"x\"]\x1e\
          {\"type\":\"1\"}\x1e\
          {\"type\":6}\x1e",
    );
    assert!(
        matches!(results[0], Err(DecodeError::Malformed(_))),
        "{:?}",
        results[0]
    );
    assert_eq!(results[1], Err(DecodeError::UnknownMessageType(99)));
    assert_eq!(
        results[2],
        Err(DecodeError::MissingField {
            message_type: 1,
            field: "arguments"
        })
    );
    assert_eq!(
        results[3],
        Err(DecodeError::MissingField {
            message_type: 0,
            field: "type"
        })
    );
    assert!(matches!(results[4], Err(DecodeError::Malformed(_))));
    assert!(matches!(results[5], Err(DecodeError::Malformed(_))));
    assert_eq!(results[6], Ok(HubMessage::Ping));
}

#[test]
fn required_fields_per_type() {
    for (text, field) in [
        ("{\"type\":2,\"invocationId\":\"1\"}", "item"),
        ("{\"type\":2,\"item\":1}", "invocationId"),
        ("{\"type\":3}", "invocationId"),
        (
            "{\"type\":4,\"target\":\"A\",\"arguments\":[]}",
            "invocationId",
        ),
        ("{\"type\":1,\"arguments\":[]}", "target"),
        ("{\"type\":5}", "invocationId"),
        ("{\"type\":8}", "sequenceId"),
        ("{\"type\":9}", "sequenceId"),
    ] {
        let result = decode(&format!("{text}\x1e"));
        assert!(
            matches!(result, Err(DecodeError::MissingField { field: f, .. }) if f == field),
            "{text}: {result:?}"
        );
    }
}

#[test]
fn oversized_message_is_fatal() {
    let mut decoder = Protocol::Json.decoder().with_max_message_size(Some(16));
    decoder.push(b"{\"type\":6}\x1e{\"type\":1,\"target\":\"LongName\"");
    assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::TooLarge { max: 16 })
    );
    decoder.push(b"\x1e{\"type\":6}\x1e");
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::TooLarge { max: 16 })
    );
}

#[test]
fn limit_counts_the_separator() {
    let ping = b"{\"type\":6}\x1e";
    let mut decoder = Protocol::Json
        .decoder()
        .with_max_message_size(Some(ping.len()));
    decoder.push(ping);
    assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
    let mut decoder = Protocol::Json
        .decoder()
        .with_max_message_size(Some(ping.len() - 1));
    decoder.push(ping);
    assert!(decoder.next_message().is_err());
}

#[test]
fn encoding_a_messagepack_value_as_json_is_refused() {
    let message =
        HubMessage::Completion(Completion::result("1", Value::null(Protocol::MessagePack)));
    let mut out = b"kept".to_vec();
    assert!(Protocol::Json.encode(&message, &mut out).is_err());
    assert_eq!(out, b"kept");
}
