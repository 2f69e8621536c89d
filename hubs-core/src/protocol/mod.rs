//! The SignalR hub protocol, pure: bytes in, messages out, no I/O.
//!
//! * [`HubMessage`] and its nine message types, with every field the protocol defines.
//! * [`Protocol`]: the JSON and MessagePack hub protocols, each with an encoder that appends
//!   to a reusable buffer ([`Protocol::encode`]) and a streaming [`MessageDecoder`] that
//!   takes bytes in chunks of any size.
//! * [`HandshakeRequest`] and [`HandshakeResponse`], always JSON.
//! * [`Value`]: arguments, items and results stay in their wire encoding until a typed
//!   caller binds them, so a broadcast is encoded once per protocol and shared.
//!
//! # Examples
//!
//! ```
//! use hubs_core::protocol::{HubMessage, Invocation, Protocol, Value};
//!
//! let call = HubMessage::Invocation(Invocation {
//!     invocation_id: Some("0".into()),
//!     target: "SendMessage".into(),
//!     arguments: vec![
//!         Value::serialize(Protocol::Json, "ann").unwrap(),
//!         Value::serialize(Protocol::Json, "hi").unwrap(),
//!     ],
//!     ..Default::default()
//! });
//! let mut out = Vec::new();
//! Protocol::Json.encode(&call, &mut out).unwrap();
//! assert_eq!(
//!     out,
//!     b"{\"type\":1,\"invocationId\":\"0\",\"target\":\"SendMessage\",\"arguments\":[\"ann\",\"hi\"]}\x1e"
//! );
//!
//! // The decoder takes bytes as they come: here one byte at a time.
//! let mut decoder = Protocol::Json.decoder();
//! let mut decoded = Vec::new();
//! for byte in &out {
//!     decoder.push(std::slice::from_ref(byte));
//!     while let Some(message) = decoder.next_message().unwrap() {
//!         decoded.push(message);
//!     }
//! }
//! assert_eq!(decoded, [call]);
//! ```

mod error;
mod handshake;
mod json;
mod message;
mod msgpack;
mod sequence;

use std::fmt;

use bytes::BytesMut;

pub use error::{DecodeError, EncodeError};
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use message::{
    Ack, CancelInvocation, Close, Completion, Headers, HubMessage, Invocation, Outcome, Sequence,
    StreamInvocation, StreamItem, Value,
};
pub use sequence::{ReceivedSequence, ReplayBuffer, SEQUENCE_AHEAD};

/// The byte that ends every JSON message and the handshake: ASCII record separator.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The default limit on one incoming message, as in ASP.NET Core: 32 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024;

/// A hub protocol: how hub messages become bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `json`: UTF-8 JSON objects ended by [`RECORD_SEPARATOR`]; text transfer format.
    Json,
    /// `messagepack`: VarInt length prefix and a MessagePack array; binary transfer format.
    MessagePack,
}

impl Protocol {
    /// Both protocols, in the order a server offers them.
    pub const ALL: [Protocol; 2] = [Protocol::Json, Protocol::MessagePack];

    /// The highest protocol version this implementation speaks (2 adds stateful reconnect).
    pub const MAX_VERSION: u32 = 2;

    /// The name used in the handshake: `json` or `messagepack`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MessagePack => "messagepack",
        }
    }

    /// Looks a protocol up by its handshake name, ignoring case, as the official server does.
    ///
    /// ```
    /// # use hubs_core::protocol::Protocol;
    /// assert_eq!(Protocol::from_name("MessagePack"), Some(Protocol::MessagePack));
    /// assert_eq!(Protocol::from_name("xml"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether the protocol needs a transport that carries text or binary data.
    pub fn transfer_format(self) -> TransferFormat {
        match self {
            Self::Json => TransferFormat::Text,
            Self::MessagePack => TransferFormat::Binary,
        }
    }

    /// Appends `message`, framed (record separator or length prefix), to `out`.
    ///
    /// `out` is never cleared, so one buffer can collect several messages for one write, and
    /// be reused across writes.
    ///
    /// # Errors
    ///
    /// [`EncodeError::ProtocolMismatch`] when a [`Value`] in the message was encoded with
    /// the other protocol; [`EncodeError::TooLarge`] when a MessagePack message exceeds the
    /// framing limit. `out` is left as it was.
    pub fn encode(self, message: &HubMessage, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Json => json::encode(message, out),
            Self::MessagePack => msgpack::encode(message, out),
        }
    }

    /// A decoder for a stream of messages in this protocol, limited to
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] per message.
    pub fn decoder(self) -> MessageDecoder {
        MessageDecoder::new(self)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a transport has to carry for a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text (WebSocket text frames; the only format Server-Sent Events carry).
    Text,
    /// Arbitrary bytes (WebSocket binary frames).
    Binary,
}

impl TransferFormat {
    /// The name used in negotiate responses: `Text` or `Binary`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "Text",
            Self::Binary => "Binary",
        }
    }
}

/// One message as it was framed (record separator or length prefix included), with its
/// decoding: what [`MessageDecoder::next_framed`] returns.
#[derive(Debug)]
pub struct Framed {
    /// The message's bytes, framing included.
    pub bytes: bytes::Bytes,
    /// The message, or why it could not be decoded.
    pub message: Result<HubMessage, DecodeError>,
}

/// Splits a byte stream into hub messages and decodes them.
///
/// Bytes go in with [`push`](Self::push) in chunks of any size: several messages in one
/// chunk, or one message over many. [`next_message`](Self::next_message) returns each
/// complete message in order.
///
/// An error about one message (malformed, unknown type, missing field) is returned once and
/// the message is dropped, so decoding can go on with the next one. A framing error
/// ([`DecodeError::is_fatal`]) is returned from then on: the stream cannot be resynchronized.
#[derive(Debug)]
pub struct MessageDecoder {
    protocol: Protocol,
    buf: BytesMut,
    max_message_size: Option<usize>,
    failed: Option<DecodeError>,
}

impl MessageDecoder {
    /// A decoder for `protocol`, with the default message size limit.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            buf: BytesMut::new(),
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
            failed: None,
        }
    }

    /// Sets the largest framed message accepted, separator or length prefix included;
    /// `None` accepts any size.
    #[must_use]
    pub fn with_max_message_size(mut self, max: Option<usize>) -> Self {
        self.max_message_size = max;
        self
    }

    /// The protocol this decoder reads.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// How many bytes are buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Decodes the next complete message, or returns `Ok(None)` until more bytes arrive.
    ///
    /// # Errors
    ///
    /// See [`DecodeError`]; after a fatal one, every call returns it again.
    pub fn next_message(&mut self) -> Result<Option<HubMessage>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let framed = match self.protocol {
            Protocol::Json => self.split_json(),
            Protocol::MessagePack => self.split_msgpack(),
        };
        let frame = match framed {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            Err(error) => {
                self.buf = BytesMut::new();
                self.failed = Some(error.clone());
                return Err(error);
            }
        };
        match self.protocol {
            Protocol::Json => json::decode(&frame),
            Protocol::MessagePack => msgpack::decode(&frame),
        }
        .map(Some)
    }

    /// The next complete message as it was framed (record separator or length prefix
    /// included), with its decoding: what a relay that looks at messages and passes them
    /// on needs (stateful reconnect's sequence accounting). `Ok(None)` until more bytes
    /// arrive.
    ///
    /// # Errors
    ///
    /// A framing error, as [`next_message`](Self::next_message); an error about the one
    /// message comes inside the pair, with its bytes.
    pub fn next_framed(&mut self) -> Result<Option<Framed>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let framed = match self.protocol {
            Protocol::Json => self.split_json().map(|body| {
                body.map(|body| {
                    let mut whole = BytesMut::with_capacity(body.len() + 1);
                    whole.extend_from_slice(&body);
                    whole.extend_from_slice(&[RECORD_SEPARATOR]);
                    (whole.freeze(), body)
                })
            }),
            Protocol::MessagePack => self.split_msgpack_framed(),
        };
        let (whole, body) = match framed {
            Ok(Some(pair)) => pair,
            Ok(None) => return Ok(None),
            Err(error) => {
                self.buf = BytesMut::new();
                self.failed = Some(error.clone());
                return Err(error);
            }
        };
        let decoded = match self.protocol {
            Protocol::Json => json::decode(&body),
            Protocol::MessagePack => msgpack::decode(&body),
        };
        Ok(Some(Framed {
            bytes: whole,
            message: decoded,
        }))
    }

    fn too_large(&self, size: usize) -> Result<(), DecodeError> {
        match self.max_message_size {
            Some(max) if size > max => Err(DecodeError::TooLarge { max }),
            _ => Ok(()),
        }
    }

    /// The next message without its record separator.
    fn split_json(&mut self) -> Result<Option<bytes::Bytes>, DecodeError> {
        match memchr::memchr(RECORD_SEPARATOR, &self.buf) {
            Some(end) => {
                self.too_large(end + 1)?;
                let mut frame = self.buf.split_to(end + 1);
                frame.truncate(end);
                Ok(Some(frame.freeze()))
            }
            None => {
                self.too_large(self.buf.len() + 1)?;
                Ok(None)
            }
        }
    }

    /// The next message with its length prefix, and its body.
    fn split_msgpack_framed(
        &mut self,
    ) -> Result<Option<(bytes::Bytes, bytes::Bytes)>, DecodeError> {
        let Some((prefix, length)) = msgpack::read_length_prefix(&self.buf)? else {
            return Ok(None);
        };
        self.too_large(prefix + length)?;
        if self.buf.len() < prefix + length {
            return Ok(None);
        }
        let whole = self.buf.split_to(prefix + length).freeze();
        let body = whole.slice(prefix..);
        Ok(Some((whole, body)))
    }

    /// The next message body without its length prefix.
    fn split_msgpack(&mut self) -> Result<Option<bytes::Bytes>, DecodeError> {
        let Some((prefix, length)) = msgpack::read_length_prefix(&self.buf)? else {
            return Ok(None);
        };
        self.too_large(prefix + length)?;
        if self.buf.len() < prefix + length {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(prefix + length);
        let _ = frame.split_to(prefix);
        Ok(Some(frame.freeze()))
    }
}
