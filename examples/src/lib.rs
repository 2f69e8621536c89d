//! The example hubs, as a library so that tests can mount them in-process.
//!
//! * [`chat`]: the chat server with its browser page (the main example).
//! * [`interop`]: the `TestHub` of the interop contract, which the official clients' tests
//!   drive.
//! * [`metrics`]: the `GET /metrics` endpoint both serve.

pub mod chat;
pub mod interop;
pub mod metrics;
