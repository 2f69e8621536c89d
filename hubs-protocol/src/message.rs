//! The hub messages both sides exchange, independent of the wire format.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{DecodeError, EncodeError};
use crate::format::Protocol;

/// Message headers: string keys to string values, allowed on message types 1–5.
///
/// Receivers accept and may ignore them; encoders write them only when non-empty
/// (JSON) or as an empty map (MessagePack, where the slot is mandatory).
pub type Headers = BTreeMap<String, String>;

/// One argument, item or result, still in the encoding it arrived in.
///
/// A `Value` holds the raw bytes of one JSON value or one MessagePack object together with
/// the protocol that produced them. Nothing is parsed until [`Value::deserialize`] binds it
/// to a Rust type, and [`Value::serialize`] produces one, so a broadcast is serialized once
/// per protocol and its bytes are shared by every recipient. Cloning is cheap (reference
/// counted).
///
/// # Examples
///
/// ```
/// use hubs_protocol::{Protocol, Value};
///
/// let value = Value::serialize(Protocol::Json, &("ann", 7)).unwrap();
/// assert_eq!(value.as_bytes(), br#"["ann",7]"#);
/// let back: (String, u32) = value.deserialize().unwrap();
/// assert_eq!(back, ("ann".to_owned(), 7));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Value {
    protocol: Protocol,
    bytes: Bytes,
}

impl Value {
    /// Wraps bytes that already hold exactly one value encoded with `protocol`.
    ///
    /// The bytes are not checked: encoding a `Value` copies them verbatim into the output,
    /// so they must be one well-formed JSON value or MessagePack object.
    pub fn from_raw(protocol: Protocol, bytes: impl Into<Bytes>) -> Self {
        Self {
            protocol,
            bytes: bytes.into(),
        }
    }

    /// The protocol's null (`null` in JSON, `nil` in MessagePack).
    pub fn null(protocol: Protocol) -> Self {
        let bytes: &'static [u8] = match protocol {
            Protocol::Json => b"null",
            Protocol::MessagePack => &[0xc0],
        };
        Self::from_raw(protocol, Bytes::from_static(bytes))
    }

    /// Serializes `value` with the conventions of `protocol`.
    ///
    /// JSON uses `serde_json`; MessagePack writes structs as maps keyed by field name (the
    /// "contractless" form the official clients expect), never as positional arrays.
    ///
    /// # Errors
    ///
    /// [`EncodeError::Serialize`] when `value`'s `Serialize` implementation fails.
    pub fn serialize<T: Serialize + ?Sized>(
        protocol: Protocol,
        value: &T,
    ) -> Result<Self, EncodeError> {
        let mut out = Vec::with_capacity(32);
        match protocol {
            Protocol::Json => serde_json::to_writer(&mut out, value)
                .map_err(|e| EncodeError::Serialize(e.to_string()))?,
            Protocol::MessagePack => value
                .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
                .map_err(|e| EncodeError::Serialize(e.to_string()))?,
        }
        Ok(Self::from_raw(protocol, out))
    }

    /// Binds the value to a Rust type.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Bind`] when the value does not have the shape `T` expects.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        match self.protocol {
            Protocol::Json => {
                serde_json::from_slice(&self.bytes).map_err(|e| DecodeError::Bind(e.to_string()))
            }
            Protocol::MessagePack => {
                rmp_serde::from_slice(&self.bytes).map_err(|e| DecodeError::Bind(e.to_string()))
            }
        }
    }

    /// Whether the value is the protocol's null.
    pub fn is_null(&self) -> bool {
        match self.protocol {
            Protocol::Json => &self.bytes[..] == b"null",
            Protocol::MessagePack => self.bytes[..] == [0xc0],
        }
    }

    /// The protocol the bytes are encoded with.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The encoded bytes of this one value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            Protocol::Json => write!(f, "Json({})", String::from_utf8_lossy(&self.bytes)),
            Protocol::MessagePack => write!(f, "MessagePack({:02x?})", &self.bytes[..]),
        }
    }
}

/// A hub message: the nine message types of the SignalR hub protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubMessage {
    /// Type 1: call a method on the other side.
    Invocation(Invocation),
    /// Type 2: one item of a stream.
    StreamItem(StreamItem),
    /// Type 3: the end of an invocation or a stream.
    Completion(Completion),
    /// Type 4: call a streaming method on the other side.
    StreamInvocation(StreamInvocation),
    /// Type 5: stop a stream the sender started.
    CancelInvocation(CancelInvocation),
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the sender is closing the connection.
    Close(Close),
    /// Type 8: stateful reconnect acknowledgement.
    Ack(Ack),
    /// Type 9: stateful reconnect resume point.
    Sequence(Sequence),
}

impl HubMessage {
    /// The numeric message type written on the wire.
    pub fn message_type(&self) -> u8 {
        match self {
            Self::Invocation(_) => 1,
            Self::StreamItem(_) => 2,
            Self::Completion(_) => 3,
            Self::StreamInvocation(_) => 4,
            Self::CancelInvocation(_) => 5,
            Self::Ping => 6,
            Self::Close(_) => 7,
            Self::Ack(_) => 8,
            Self::Sequence(_) => 9,
        }
    }
}

/// Type 1: a call; blocking when it carries an invocation id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Optional headers.
    pub headers: Headers,
    /// `None` for a non-blocking call that must never be answered. An empty id on the wire
    /// is read as `None`, as the official server does.
    pub invocation_id: Option<String>,
    /// The method to call.
    pub target: String,
    /// The positional arguments (upload stream arguments are absent: see `stream_ids`).
    pub arguments: Vec<Value>,
    /// Ids of the client-to-server streams that stand for the stream parameters.
    pub stream_ids: Vec<String>,
}

/// Type 2: one item of a stream, in either direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamItem {
    /// Optional headers.
    pub headers: Headers,
    /// The stream invocation (or upload stream id) the item belongs to.
    pub invocation_id: String,
    /// The item; may be the protocol's null.
    pub item: Value,
}

/// Type 3: ends an invocation or a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Optional headers.
    pub headers: Headers,
    /// The invocation (or stream) being completed.
    pub invocation_id: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl Completion {
    /// A completion carrying a result value (which may be null).
    pub fn result(invocation_id: impl Into<String>, value: Value) -> Self {
        Self::new(invocation_id, Outcome::Result(value))
    }

    /// A completion with neither result nor error (end of a stream, or a void result).
    pub fn void(invocation_id: impl Into<String>) -> Self {
        Self::new(invocation_id, Outcome::Void)
    }

    /// A failed completion carrying an error text.
    pub fn error(invocation_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self::new(invocation_id, Outcome::Error(error.into()))
    }

    fn new(invocation_id: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            headers: Headers::new(),
            invocation_id: invocation_id.into(),
            outcome,
        }
    }
}

/// How a [`Completion`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, no value: JSON without `result` and `error`, MessagePack result kind 2.
    Void,
    /// A result, possibly null: JSON `result`, MessagePack result kind 3.
    Result(Value),
    /// A failure: JSON `error`, MessagePack result kind 1.
    Error(String),
}

/// Type 4: a call to a streaming method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamInvocation {
    /// Optional headers.
    pub headers: Headers,
    /// Identifies the stream; always present.
    pub invocation_id: String,
    /// The streaming method to call.
    pub target: String,
    /// The positional arguments.
    pub arguments: Vec<Value>,
    /// Ids of the client-to-server streams that stand for the stream parameters.
    pub stream_ids: Vec<String>,
}

/// Type 5: asks the other side to stop a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelInvocation {
    /// Optional headers.
    pub headers: Headers,
    /// The stream invocation to stop.
    pub invocation_id: String,
}

/// Type 7: the sender is closing the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Close {
    /// Why, when the close is abnormal.
    pub error: Option<String>,
    /// Whether a client with automatic reconnect may reconnect.
    pub allow_reconnect: bool,
}

/// Type 8: every trackable message up to `sequence_id` was received (stateful reconnect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The highest sequence id processed.
    pub sequence_id: u64,
}

/// Type 9: the sequence id of the next message the sender will (re)send (stateful reconnect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The sequence id.
    pub sequence_id: u64,
}
