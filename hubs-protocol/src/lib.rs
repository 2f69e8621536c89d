//! The SignalR hub protocol for [hubs](https://docs.rs/hubs-signalr), pure: bytes in, messages out,
//! no I/O and no async runtime.
//!
//! * [`HubMessage`] and its nine message types, with every field the protocol defines.
//! * [`Protocol`]: the JSON and MessagePack hub protocols, each with an encoder that appends
//!   to a reusable buffer ([`Protocol::encode`]) and a streaming [`MessageDecoder`] that
//!   takes bytes in chunks of any size.
//! * [`HandshakeRequest`] and [`HandshakeResponse`], always JSON.
//! * [`Value`]: arguments, items and results stay in their wire encoding until a typed
//!   caller binds them, so a broadcast is encoded once per protocol and shared.
//! * [`Arguments`], [`Binary`], [`HubError`] and [`TransportKind`]: what a hub and a client
//!   both name.
//! * [`wire`]: every text of the official server and clients that hubs reproduces;
//!   [`trace_context`]: W3C trace context in message headers.
//!
//! The server runtime (hubs-core) and the client (hubs-client) both build on this crate,
//! as tokio-tungstenite builds on tungstenite. Most users reach it as `hubs::protocol`.
//!
//! # Examples
//!
//! ```
//! use hubs_protocol::{HubMessage, Invocation, Protocol, Value};
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
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod arguments;
mod binary;
mod codec;
mod error;
mod format;
mod handshake;
mod hub_error;
mod json;
mod message;
mod msgpack;
mod sequence;
pub mod trace_context;
mod transport_kind;
pub mod wire;

pub use arguments::Arguments;
pub use binary::Binary;
pub use codec::{Framed, MessageDecoder};
pub use error::{DecodeError, EncodeError};
pub use format::{DEFAULT_MAX_MESSAGE_SIZE, Protocol, RECORD_SEPARATOR, TransferFormat};
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use hub_error::HubError;
pub use message::{
    Ack, CancelInvocation, Close, Completion, Headers, HubMessage, Invocation, Outcome, Sequence,
    StreamInvocation, StreamItem, Value,
};
pub use sequence::{ReceivedSequence, ReplayBuffer, SEQUENCE_AHEAD};
pub use transport_kind::TransportKind;
