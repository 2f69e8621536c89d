//! Real-time hubs for Rust, wire-compatible with ASP.NET Core SignalR.
//!
//! `hubs` is the crate applications add; it re-exports the rest of the family.
//!
//! * [`protocol`]: the SignalR hub protocol (JSON and MessagePack), pure and I/O-free.
//!
//! # Examples
//!
//! ```
//! use hubs::protocol::{HubMessage, Protocol};
//!
//! let mut decoder = Protocol::MessagePack.decoder();
//! decoder.push(&[0x02, 0x91, 0x06]);
//! assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
//! ```

pub use hubs_core::protocol;
