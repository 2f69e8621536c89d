//! Errors of the protocol layer.

/// A message could not be decoded.
///
/// Every variant but [`DecodeError::TooLarge`] and [`DecodeError::BadLengthPrefix`] is about
/// one framed message only: the decoder has already consumed it, so the caller can answer
/// the peer and carry on with the next message. [`DecodeError::is_fatal`] tells which.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is not well-formed JSON or MessagePack, or a field has the wrong kind.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message type is not one of the nine this protocol version defines. Receivers
    /// ignore such messages for forward compatibility.
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    /// A field the message type requires is absent.
    #[error("missing required field `{field}` in a message of type {message_type}")]
    MissingField {
        /// The message type.
        message_type: u8,
        /// The wire name of the field.
        field: &'static str,
    },
    /// A framed message is larger than the configured limit.
    #[error("the maximum message size of {max}B was exceeded")]
    TooLarge {
        /// The limit, in bytes, including the record separator or length prefix.
        max: usize,
    },
    /// A MessagePack length prefix is longer than 5 bytes or above 2^31 - 1.
    #[error("invalid message length prefix")]
    BadLengthPrefix,
    /// The handshake is not a JSON object with a string `protocol` and an integer `version`.
    #[error("invalid handshake: {0}")]
    Handshake(String),
    /// A value could not be bound to the Rust type asked for.
    #[error("cannot bind value: {0}")]
    Bind(String),
}

impl DecodeError {
    /// Whether the byte stream cannot be decoded any further.
    ///
    /// After a fatal error the framing is lost (the decoder cannot tell where the next
    /// message starts), so the connection has to be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::TooLarge { .. } | Self::BadLengthPrefix)
    }
}

/// A message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload's `Serialize` implementation failed.
    #[error("cannot serialize value: {0}")]
    Serialize(String),
    /// A [`Value`](crate::message::Value) encoded with one protocol was given to the other.
    #[error("a {value} value cannot be written by the {encoder} protocol")]
    ProtocolMismatch {
        /// The value's protocol name.
        value: &'static str,
        /// The encoder's protocol name.
        encoder: &'static str,
    },
    /// The encoded message is larger than MessagePack's 2^31 - 1 byte frame limit.
    #[error("message too large to frame")]
    TooLarge,
}
