//! The MessagePack hub protocol: each message is a VarInt length prefix and one array.

use bytes::Bytes;
use rmp::Marker;
use rmp::encode as mp;

use crate::error::{DecodeError, EncodeError};
use crate::format::Protocol;
use crate::message::{
    Ack, CancelInvocation, Close, Completion, Headers, HubMessage, Invocation, Outcome, Sequence,
    StreamInvocation, StreamItem, Value,
};

/// The largest body a length prefix can announce.
const MAX_LENGTH: u64 = (1 << 31) - 1;

const RESULT_ERROR: u64 = 1;
const RESULT_VOID: u64 = 2;
const RESULT_VALUE: u64 = 3;

/// Reads the VarInt length prefix at the start of `buf`.
///
/// Returns `Ok(None)` while the prefix is incomplete, otherwise the prefix size and the
/// body length.
pub(crate) fn read_length_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut length: u64 = 0;
    for (i, &byte) in buf.iter().take(5).enumerate() {
        length |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if length > MAX_LENGTH {
                return Err(DecodeError::BadLengthPrefix);
            }
            // `length` fits in 31 bits here.
            return Ok(Some((i + 1, length as usize)));
        }
    }
    if buf.len() >= 5 {
        Err(DecodeError::BadLengthPrefix)
    } else {
        Ok(None)
    }
}

/// Appends the VarInt encoding of `length`.
fn write_length_prefix(out: &mut Vec<u8>, mut length: usize) {
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `message`, length prefix first, to `out`.
pub(crate) fn encode(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    if let Err(error) = encode_body(message, out) {
        out.truncate(start);
        return Err(error);
    }
    let length = out.len() - start;
    if length as u64 > MAX_LENGTH {
        out.truncate(start);
        return Err(EncodeError::TooLarge);
    }
    let mut prefix = Vec::with_capacity(5);
    write_length_prefix(&mut prefix, length);
    out.splice(start..start, prefix);
    Ok(())
}

// Writing into a `Vec` cannot fail, so the `Result`s of `rmp::encode` are dropped below.

fn encode_body(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let kind = u64::from(message.message_type());
    match message {
        HubMessage::Invocation(m) => {
            let _ = mp::write_array_len(out, 6);
            let _ = mp::write_uint(out, kind);
            headers(out, &m.headers);
            match &m.invocation_id {
                Some(id) => string(out, id),
                None => {
                    let _ = mp::write_nil(out);
                }
            }
            call(out, &m.target, &m.arguments, &m.stream_ids)?;
        }
        HubMessage::StreamInvocation(m) => {
            let _ = mp::write_array_len(out, 6);
            let _ = mp::write_uint(out, kind);
            headers(out, &m.headers);
            string(out, &m.invocation_id);
            call(out, &m.target, &m.arguments, &m.stream_ids)?;
        }
        HubMessage::StreamItem(m) => {
            let _ = mp::write_array_len(out, 4);
            let _ = mp::write_uint(out, kind);
            headers(out, &m.headers);
            string(out, &m.invocation_id);
            raw(out, &m.item)?;
        }
        HubMessage::Completion(m) => {
            let len = if m.outcome == Outcome::Void { 4 } else { 5 };
            let _ = mp::write_array_len(out, len);
            let _ = mp::write_uint(out, kind);
            headers(out, &m.headers);
            string(out, &m.invocation_id);
            match &m.outcome {
                Outcome::Error(error) => {
                    let _ = mp::write_uint(out, RESULT_ERROR);
                    string(out, error);
                }
                Outcome::Void => {
                    let _ = mp::write_uint(out, RESULT_VOID);
                }
                Outcome::Result(value) => {
                    let _ = mp::write_uint(out, RESULT_VALUE);
                    raw(out, value)?;
                }
            }
        }
        HubMessage::CancelInvocation(m) => {
            let _ = mp::write_array_len(out, 3);
            let _ = mp::write_uint(out, kind);
            headers(out, &m.headers);
            string(out, &m.invocation_id);
        }
        HubMessage::Ping => {
            let _ = mp::write_array_len(out, 1);
            let _ = mp::write_uint(out, kind);
        }
        HubMessage::Close(m) => {
            let _ = mp::write_array_len(out, 3);
            let _ = mp::write_uint(out, kind);
            match &m.error {
                Some(error) => string(out, error),
                None => {
                    let _ = mp::write_nil(out);
                }
            }
            let _ = mp::write_bool(out, m.allow_reconnect);
        }
        HubMessage::Ack(Ack { sequence_id }) | HubMessage::Sequence(Sequence { sequence_id }) => {
            let _ = mp::write_array_len(out, 2);
            let _ = mp::write_uint(out, kind);
            let _ = mp::write_uint(out, *sequence_id);
        }
    }
    Ok(())
}

fn call(
    out: &mut Vec<u8>,
    target: &str,
    arguments: &[Value],
    stream_ids: &[String],
) -> Result<(), EncodeError> {
    string(out, target);
    let _ = mp::write_array_len(out, len_u32(arguments.len())?);
    for argument in arguments {
        raw(out, argument)?;
    }
    let _ = mp::write_array_len(out, len_u32(stream_ids.len())?);
    for id in stream_ids {
        string(out, id);
    }
    Ok(())
}

fn headers(out: &mut Vec<u8>, headers: &Headers) {
    let _ = mp::write_map_len(out, headers.len() as u32);
    for (key, value) in headers {
        string(out, key);
        string(out, value);
    }
}

fn string(out: &mut Vec<u8>, value: &str) {
    let _ = mp::write_str(out, value);
}

fn len_u32(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLarge)
}

fn raw(out: &mut Vec<u8>, value: &Value) -> Result<(), EncodeError> {
    if value.protocol() != Protocol::MessagePack {
        return Err(EncodeError::ProtocolMismatch {
            value: value.protocol().name(),
            encoder: Protocol::MessagePack.name(),
        });
    }
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

/// Decodes one message body (the bytes after the length prefix).
pub(crate) fn decode(body: &Bytes) -> Result<HubMessage, DecodeError> {
    let mut r = Reader {
        body,
        rest: &body[..],
    };
    let len = r.array_len()?;
    if len == 0 {
        return Err(malformed("empty message array"));
    }
    let kind = r.uint()?;
    let message_type = u8::try_from(kind).unwrap_or(0);
    let need = |min: u32| {
        if len < min {
            Err(malformed(format!(
                "a message of type {message_type} needs at least {min} elements, got {len}"
            )))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        1 | 4 => {
            need(5)?;
            let headers = r.headers()?;
            let invocation_id = r.opt_string()?.filter(|id| !id.is_empty());
            let target = r.string()?;
            let arguments = r.values()?;
            let stream_ids = if len >= 6 { r.strings()? } else { Vec::new() };
            if kind == 1 {
                HubMessage::Invocation(Invocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                })
            } else {
                HubMessage::StreamInvocation(StreamInvocation {
                    headers,
                    invocation_id: invocation_id.ok_or(DecodeError::MissingField {
                        message_type,
                        field: "invocationId",
                    })?,
                    target,
                    arguments,
                    stream_ids,
                })
            }
        }
        2 => {
            need(4)?;
            HubMessage::StreamItem(StreamItem {
                headers: r.headers()?,
                invocation_id: r.string()?,
                item: r.value()?,
            })
        }
        3 => {
            need(4)?;
            let headers = r.headers()?;
            let invocation_id = r.string()?;
            let outcome = match r.uint()? {
                RESULT_ERROR => {
                    need(5)?;
                    Outcome::Error(r.string()?)
                }
                RESULT_VOID => Outcome::Void,
                RESULT_VALUE => {
                    need(5)?;
                    Outcome::Result(r.value()?)
                }
                other => return Err(malformed(format!("invalid completion result kind {other}"))),
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                outcome,
            })
        }
        5 => {
            need(3)?;
            HubMessage::CancelInvocation(CancelInvocation {
                headers: r.headers()?,
                invocation_id: r.string()?,
            })
        }
        6 => HubMessage::Ping,
        7 => {
            need(2)?;
            let error = r.opt_string()?;
            let allow_reconnect = if len >= 3 { r.bool()? } else { false };
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }
        8 => {
            need(2)?;
            HubMessage::Ack(Ack {
                sequence_id: r.uint()?,
            })
        }
        9 => {
            need(2)?;
            HubMessage::Sequence(Sequence {
                sequence_id: r.uint()?,
            })
        }
        other => return Err(DecodeError::UnknownMessageType(other)),
    })
}

fn malformed(text: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(text.into())
}

fn truncated() -> DecodeError {
    malformed("message ends inside a value")
}

/// A cursor over one message body; values come out as slices of the body, not copies.
struct Reader<'a> {
    body: &'a Bytes,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Result<Marker, DecodeError> {
        self.rest
            .first()
            .map(|&b| Marker::from_u8(b))
            .ok_or_else(truncated)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(truncated());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array_len(&mut self) -> Result<u32, DecodeError> {
        rmp::decode::read_array_len(&mut self.rest).map_err(|e| malformed(e.to_string()))
    }

    fn uint(&mut self) -> Result<u64, DecodeError> {
        rmp::decode::read_int(&mut self.rest).map_err(|e| malformed(e.to_string()))
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        rmp::decode::read_bool(&mut self.rest).map_err(|e| malformed(e.to_string()))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let (text, tail) =
            rmp::decode::read_str_from_slice(self.rest).map_err(|e| malformed(e.to_string()))?;
        self.rest = tail;
        Ok(text.to_owned())
    }

    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        if self.peek()? == Marker::Null {
            self.take(1)?;
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    fn headers(&mut self) -> Result<Headers, DecodeError> {
        let len = rmp::decode::read_map_len(&mut self.rest)
            .map_err(|_| malformed("headers must be a map"))?;
        let mut headers = Headers::new();
        for _ in 0..len {
            let key = self.string()?;
            let value = self.string()?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let len = self.array_len()?;
        let mut strings = Vec::with_capacity(len.min(64) as usize);
        for _ in 0..len {
            strings.push(self.string()?);
        }
        Ok(strings)
    }

    fn values(&mut self) -> Result<Vec<Value>, DecodeError> {
        let len = self.array_len()?;
        let mut values = Vec::with_capacity(len.min(64) as usize);
        for _ in 0..len {
            values.push(self.value()?);
        }
        Ok(values)
    }

    /// Skips one object, nested ones included, and returns its bytes.
    ///
    /// Iterative (a count of objects still to skip), so deep nesting cannot overflow the
    /// stack; every step consumes at least one byte, so it ends.
    fn value(&mut self) -> Result<Value, DecodeError> {
        let start = self.rest;
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker = self.peek()?;
            self.take(1)?;
            let skip = match marker {
                Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True => 0,
                Marker::False => 0,
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixStr(n) => usize::from(n),
                Marker::Str8 | Marker::Bin8 => self.len_field(1)?,
                Marker::Str16 | Marker::Bin16 => self.len_field(2)?,
                Marker::Str32 | Marker::Bin32 => self.len_field(4)?,
                Marker::FixArray(n) => {
                    pending += u64::from(n);
                    0
                }
                Marker::Array16 => {
                    pending += self.len_field(2)? as u64;
                    0
                }
                Marker::Array32 => {
                    pending += self.len_field(4)? as u64;
                    0
                }
                Marker::FixMap(n) => {
                    pending += 2 * u64::from(n);
                    0
                }
                Marker::Map16 => {
                    pending += 2 * self.len_field(2)? as u64;
                    0
                }
                Marker::Map32 => {
                    pending += 2 * self.len_field(4)? as u64;
                    0
                }
                Marker::FixExt1 => 2,
                Marker::FixExt2 => 3,
                Marker::FixExt4 => 5,
                Marker::FixExt8 => 9,
                Marker::FixExt16 => 17,
                Marker::Ext8 => self.len_field(1)? + 1,
                Marker::Ext16 => self.len_field(2)? + 1,
                Marker::Ext32 => self.len_field(4)? + 1,
                Marker::Reserved => return Err(malformed("reserved MessagePack marker 0xc1")),
            };
            self.take(skip)?;
            // Every pending object needs at least one more byte.
            if pending > self.rest.len() as u64 {
                return Err(truncated());
            }
        }
        let used = &start[..start.len() - self.rest.len()];
        Ok(Value::from_raw(
            Protocol::MessagePack,
            self.body.slice_ref(used),
        ))
    }

    /// Reads a big-endian length of `width` bytes.
    fn len_field(&mut self, width: usize) -> Result<usize, DecodeError> {
        let bytes = self.take(width)?;
        Ok(bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
    }
}
