//! Protocol codecs and hub runtime for [hubs](https://docs.rs/hubs), a real-time framework
//! that speaks ASP.NET Core SignalR's wire protocol.
//!
//! Most users depend on the `hubs` facade instead of this crate.
//!
//! * [`protocol`]: the hub messages, the JSON and MessagePack hub protocols and the
//!   handshake, as pure functions over bytes (no I/O, no async runtime).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod protocol;
