//! The handshake: always JSON followed by the record separator, whatever the hub protocol.

use bytes::BytesMut;
use serde::Deserialize;

use crate::error::DecodeError;
use crate::format::RECORD_SEPARATOR;

/// The first message a client sends: which hub protocol it speaks.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use hubs_protocol::HandshakeRequest;
///
/// let mut buf = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":1}\x1e"[..]);
/// let request = HandshakeRequest::decode(&mut buf, None).unwrap().unwrap();
/// assert_eq!(request, HandshakeRequest::new("json", 1));
/// assert!(buf.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The hub protocol name (`json`, `messagepack`), matched case-insensitively.
    pub protocol: String,
    /// The protocol version: 1, or 2 when the client wants stateful reconnect.
    pub version: u32,
}

#[derive(Deserialize)]
struct RequestWire {
    protocol: Option<String>,
    version: Option<u32>,
}

#[derive(Deserialize)]
struct ResponseWire {
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<serde::de::IgnoredAny>,
}

impl HandshakeRequest {
    /// A request for `protocol` at `version`.
    pub fn new(protocol: impl Into<String>, version: u32) -> Self {
        Self {
            protocol: protocol.into(),
            version,
        }
    }

    /// Appends the request as the official clients write it:
    /// `{"protocol":"json","version":1}` and the record separator.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"protocol\":");
        // Writing a `str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.protocol);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.push(b'}');
        out.push(RECORD_SEPARATOR);
    }

    /// Takes the request off the front of `buf`, leaving any bytes after it in place.
    ///
    /// Returns `Ok(None)` until the record separator has arrived.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooLarge`] when more than `max` bytes arrive without a separator;
    /// [`DecodeError::Handshake`] when the request is not an object with a string
    /// `protocol` and an integer `version`.
    pub fn decode(buf: &mut BytesMut, max: Option<usize>) -> Result<Option<Self>, DecodeError> {
        let Some(frame) = split_record(buf, max)? else {
            return Ok(None);
        };
        let wire: RequestWire = serde_json::from_slice(&frame[..frame.len() - 1])
            .map_err(|e| DecodeError::Handshake(e.to_string()))?;
        match (wire.protocol, wire.version) {
            (Some(protocol), Some(version)) => Ok(Some(Self { protocol, version })),
            (None, _) => Err(DecodeError::Handshake(
                "missing required property 'protocol'".to_owned(),
            )),
            (_, None) => Err(DecodeError::Handshake(
                "missing required property 'version'".to_owned(),
            )),
        }
    }
}

/// The server's answer to a [`HandshakeRequest`]: `{}` on success, `{"error":"…"}` otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// Why the handshake failed; `None` on success.
    pub error: Option<String>,
}

impl HandshakeResponse {
    /// A successful response.
    pub fn ok() -> Self {
        Self { error: None }
    }

    /// A failed response carrying `error`.
    pub fn error(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
        }
    }

    /// Appends the response and its record separator.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.error {
            None => out.extend_from_slice(b"{}"),
            Some(error) => {
                out.extend_from_slice(b"{\"error\":");
                let _ = serde_json::to_writer(&mut *out, error);
                out.push(b'}');
            }
        }
        out.push(RECORD_SEPARATOR);
    }

    /// Takes the response off the front of `buf`; hub messages may follow it.
    ///
    /// Returns `Ok(None)` until the record separator has arrived.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Handshake`] when the response is not a JSON object, or is a hub
    /// message (it has a `type`), as the official clients check.
    pub fn decode(buf: &mut BytesMut, max: Option<usize>) -> Result<Option<Self>, DecodeError> {
        let Some(frame) = split_record(buf, max)? else {
            return Ok(None);
        };
        let wire: ResponseWire = serde_json::from_slice(&frame[..frame.len() - 1])
            .map_err(|e| DecodeError::Handshake(e.to_string()))?;
        if wire.kind.is_some() {
            return Err(DecodeError::Handshake(
                "Expected a handshake response from the server.".to_owned(),
            ));
        }
        Ok(Some(Self { error: wire.error }))
    }
}

/// Splits one record, separator included, off the front of `buf`.
fn split_record(buf: &mut BytesMut, max: Option<usize>) -> Result<Option<BytesMut>, DecodeError> {
    match memchr::memchr(RECORD_SEPARATOR, buf) {
        Some(end) => {
            if max.is_some_and(|max| end + 1 > max) {
                return Err(DecodeError::TooLarge {
                    max: max.unwrap_or_default(),
                });
            }
            Ok(Some(buf.split_to(end + 1)))
        }
        None => match max {
            Some(max) if buf.len() + 1 > max => Err(DecodeError::TooLarge { max }),
            _ => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_match_the_official_clients() {
        let mut out = Vec::new();
        HandshakeRequest::new("messagepack", 1).encode(&mut out);
        assert_eq!(out, b"{\"protocol\":\"messagepack\",\"version\":1}\x1e");
    }

    #[test]
    fn request_ignores_unknown_properties_and_keeps_what_follows() {
        let mut buf = BytesMut::from(
            &b"{\"version\":2,\"x\":[1],\"protocol\":\"JSON\"}\x1e{\"type\":6}\x1e"[..],
        );
        let request = HandshakeRequest::decode(&mut buf, Some(32768)).unwrap();
        assert_eq!(request, Some(HandshakeRequest::new("JSON", 2)));
        assert_eq!(&buf[..], b"{\"type\":6}\x1e");
    }

    #[test]
    fn request_waits_for_the_separator() {
        let mut buf = BytesMut::from(&b"{\"protocol\":\"json\""[..]);
        assert_eq!(HandshakeRequest::decode(&mut buf, None), Ok(None));
        assert_eq!(buf.len(), 18);
    }

    #[test]
    fn request_missing_fields_or_garbage_fail() {
        for input in [
            &b"{\"protocol\":\"json\"}\x1e"[..],
            b"{\"version\":1}\x1e",
            b"GET / HTTP/1.1\x1e",
            b"{\"protocol\":1,\"version\":1}\x1e",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(
                matches!(
                    HandshakeRequest::decode(&mut buf, None),
                    Err(DecodeError::Handshake(_))
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn request_over_the_limit_is_too_large() {
        let mut buf = BytesMut::from(&[b' '; 40][..]);
        assert_eq!(
            HandshakeRequest::decode(&mut buf, Some(32)),
            Err(DecodeError::TooLarge { max: 32 })
        );
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        HandshakeResponse::ok().encode(&mut out);
        HandshakeResponse::error("The protocol 'xml' is not supported.").encode(&mut out);
        assert_eq!(
            out,
            b"{}\x1e{\"error\":\"The protocol 'xml' is not supported.\"}\x1e"
        );
    }

    #[test]
    fn response_decodes_and_rejects_hub_messages() {
        let mut buf = BytesMut::from(&b"{}\x1e{\"type\":6}\x1e"[..]);
        assert_eq!(
            HandshakeResponse::decode(&mut buf, None),
            Ok(Some(HandshakeResponse::ok()))
        );
        assert!(matches!(
            HandshakeResponse::decode(&mut buf, None),
            Err(DecodeError::Handshake(_))
        ));
        let mut buf = BytesMut::from(&b"{\"error\":\"nope\"}\x1e"[..]);
        assert_eq!(
            HandshakeResponse::decode(&mut buf, None),
            Ok(Some(HandshakeResponse::error("nope")))
        );
    }
}
