//! The JSON hub protocol: UTF-8 JSON objects, each followed by the record separator 0x1E.

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::{DecodeError, EncodeError};
use crate::format::{Protocol, RECORD_SEPARATOR};
use crate::message::{
    Ack, CancelInvocation, Close, Completion, Headers, HubMessage, Invocation, Outcome, Sequence,
    StreamInvocation, StreamItem, Value,
};

/// Every field any message type may carry; which are required depends on `type`.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: Option<u64>,
    #[serde(rename = "invocationId", default)]
    invocation_id: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<Vec<&'a RawValue>>,
    #[serde(rename = "streamIds", default)]
    stream_ids: Option<Vec<String>>,
    #[serde(default, borrow, deserialize_with = "present")]
    item: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "allowReconnect", default)]
    allow_reconnect: Option<bool>,
    #[serde(rename = "sequenceId", default)]
    sequence_id: Option<u64>,
    #[serde(default)]
    headers: Option<Headers>,
}

/// `Some` whenever the key is present, even when its value is `null` (plain `Option` would
/// read `null` as absent, and `"result":null` is a result).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Decodes one message from `frame`, the bytes before its record separator.
pub(crate) fn decode(frame: &Bytes) -> Result<HubMessage, DecodeError> {
    // A derived struct also accepts a positional array; the protocol only has objects.
    if frame.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Malformed("expected a JSON object".to_owned()));
    }
    let wire: Wire<'_> =
        serde_json::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let kind = wire.kind.ok_or(DecodeError::MissingField {
        message_type: 0,
        field: "type",
    })?;
    let value =
        |raw: &RawValue| Value::from_raw(Protocol::Json, frame.slice_ref(raw.get().as_bytes()));
    let values = |raws: Vec<&RawValue>| raws.into_iter().map(value).collect::<Vec<_>>();
    let message_type = u8::try_from(kind).unwrap_or(0);
    let missing = |field| DecodeError::MissingField {
        message_type,
        field,
    };
    let headers = wire.headers.unwrap_or_default();
    Ok(match kind {
        1 => HubMessage::Invocation(Invocation {
            headers,
            invocation_id: wire.invocation_id.filter(|id| !id.is_empty()),
            target: wire.target.ok_or_else(|| missing("target"))?,
            arguments: values(wire.arguments.ok_or_else(|| missing("arguments"))?),
            stream_ids: wire.stream_ids.unwrap_or_default(),
        }),
        2 => HubMessage::StreamItem(StreamItem {
            headers,
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
            item: value(wire.item.ok_or_else(|| missing("item"))?),
        }),
        3 => {
            let outcome = match (wire.result, wire.error) {
                (Some(_), Some(_)) => {
                    return Err(DecodeError::Malformed(
                        "The 'error' and 'result' properties are mutually exclusive.".to_owned(),
                    ));
                }
                (Some(result), None) => Outcome::Result(value(result)),
                (None, Some(error)) => Outcome::Error(error),
                (None, None) => Outcome::Void,
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
                outcome,
            })
        }
        4 => HubMessage::StreamInvocation(StreamInvocation {
            headers,
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
            target: wire.target.ok_or_else(|| missing("target"))?,
            arguments: values(wire.arguments.ok_or_else(|| missing("arguments"))?),
            stream_ids: wire.stream_ids.unwrap_or_default(),
        }),
        5 => HubMessage::CancelInvocation(CancelInvocation {
            headers,
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
        }),
        6 => HubMessage::Ping,
        7 => HubMessage::Close(Close {
            error: wire.error,
            allow_reconnect: wire.allow_reconnect.unwrap_or(false),
        }),
        8 => HubMessage::Ack(Ack {
            sequence_id: wire.sequence_id.ok_or_else(|| missing("sequenceId"))?,
        }),
        9 => HubMessage::Sequence(Sequence {
            sequence_id: wire.sequence_id.ok_or_else(|| missing("sequenceId"))?,
        }),
        other => return Err(DecodeError::UnknownMessageType(other)),
    })
}

/// Appends `message` and its record separator to `out`.
pub(crate) fn encode(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_body(message, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_body(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"type\":");
    out.push(b'0' + message.message_type());
    match message {
        HubMessage::Invocation(m) => {
            if let Some(id) = &m.invocation_id {
                string_field(out, "invocationId", id);
            }
            call(out, &m.target, &m.arguments, &m.stream_ids)?;
            headers(out, &m.headers);
        }
        HubMessage::StreamInvocation(m) => {
            string_field(out, "invocationId", &m.invocation_id);
            call(out, &m.target, &m.arguments, &m.stream_ids)?;
            headers(out, &m.headers);
        }
        HubMessage::StreamItem(m) => {
            string_field(out, "invocationId", &m.invocation_id);
            out.extend_from_slice(b",\"item\":");
            raw(out, &m.item)?;
            headers(out, &m.headers);
        }
        HubMessage::Completion(m) => {
            string_field(out, "invocationId", &m.invocation_id);
            match &m.outcome {
                Outcome::Void => {}
                Outcome::Result(value) => {
                    out.extend_from_slice(b",\"result\":");
                    raw(out, value)?;
                }
                Outcome::Error(error) => string_field(out, "error", error),
            }
            headers(out, &m.headers);
        }
        HubMessage::CancelInvocation(m) => {
            string_field(out, "invocationId", &m.invocation_id);
            headers(out, &m.headers);
        }
        HubMessage::Ping => {}
        HubMessage::Close(m) => {
            if let Some(error) = &m.error {
                string_field(out, "error", error);
            }
            if m.allow_reconnect {
                out.extend_from_slice(b",\"allowReconnect\":true");
            }
        }
        HubMessage::Ack(Ack { sequence_id }) | HubMessage::Sequence(Sequence { sequence_id }) => {
            out.extend_from_slice(b",\"sequenceId\":");
            out.extend_from_slice(sequence_id.to_string().as_bytes());
        }
    }
    out.push(b'}');
    out.push(RECORD_SEPARATOR);
    Ok(())
}

fn call(
    out: &mut Vec<u8>,
    target: &str,
    arguments: &[Value],
    stream_ids: &[String],
) -> Result<(), EncodeError> {
    string_field(out, "target", target);
    out.extend_from_slice(b",\"arguments\":[");
    for (i, argument) in arguments.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        raw(out, argument)?;
    }
    out.push(b']');
    if !stream_ids.is_empty() {
        out.extend_from_slice(b",\"streamIds\":[");
        for (i, id) in stream_ids.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, id);
        }
        out.push(b']');
    }
    Ok(())
}

fn headers(out: &mut Vec<u8>, headers: &Headers) {
    if headers.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"headers\":{");
    for (i, (key, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, key);
        out.push(b':');
        string(out, value);
    }
    out.push(b'}');
}

fn string_field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    string(out, value);
}

fn string(out: &mut Vec<u8>, value: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn raw(out: &mut Vec<u8>, value: &Value) -> Result<(), EncodeError> {
    if value.protocol() != Protocol::Json {
        return Err(EncodeError::ProtocolMismatch {
            value: value.protocol().name(),
            encoder: Protocol::Json.name(),
        });
    }
    out.extend_from_slice(value.as_bytes());
    Ok(())
}
