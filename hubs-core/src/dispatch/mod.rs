//! Floor 6, the per-connection task: one connection from handshake to close.
//! Transport-agnostic: bytes come in as a stream and frames go out through the
//! connection's queue.
//!
//! * [`start`]: the task's life: handshake, `on_connected`, the read loop, close.
//! * [`handshake`]: the protocol the client asks for.
//! * [`reader`]: the read loop, which never waits on one invocation.
//! * [`invocation`]: each invocation's one owner, from read to last message;
//!   [`completion`]: how it ends on the wire.
//! * [`keep_alive`]: Pings and the client timeout.
//! * [`hooks`]: `on_connected` and `on_disconnected` inside the filters.
//! * [`close`]: why the connection closed and what is released, in order.
//! * [`refresh`]: a refreshed credential taken by a live connection.

pub(crate) mod close;
pub(crate) mod completion;
pub(crate) mod handshake;
pub(crate) mod hooks;
pub(crate) mod invocation;
pub(crate) mod keep_alive;
pub(crate) mod reader;
pub(crate) mod refresh;
pub(crate) mod start;
pub(crate) mod task;
