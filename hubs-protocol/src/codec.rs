//! Encoding hub messages into frames and splitting a byte stream back into messages.

use bytes::BytesMut;

use crate::error::{DecodeError, EncodeError};
use crate::format::{DEFAULT_MAX_MESSAGE_SIZE, Protocol, RECORD_SEPARATOR};
use crate::message::HubMessage;
use crate::{json, msgpack};

impl Protocol {
    /// Appends `message`, framed (record separator or length prefix), to `out`.
    ///
    /// `out` is never cleared, so one buffer can collect several messages for one write, and
    /// be reused across writes.
    ///
    /// # Errors
    ///
    /// [`EncodeError::ProtocolMismatch`] when a [`Value`](crate::message::Value) in the message was encoded with
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
