//! The example hubs, as a library so that tests can mount them in-process.
//!
//! * [`interop`]: the `TestHub` of the interop contract, which the official clients' tests
//!   drive.

pub mod interop;
