//! The contract between transports and the hub runtime: what a transport hands a hub for
//! each connection, and what it gets back. Core sees what a transport can do
//! ([`Capabilities`]), never which one it is.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

use hubs_protocol::TransportKind;

use crate::base::connection_id::ConnectionId;
use crate::base::future::BoxFuture;
use crate::base::identity::Request;
use crate::connection::close::CloseHandle;
use crate::connection::outbound::Outgoing;

/// What a transport can do, as the hub runtime needs to know it.
///
/// ```
/// use hubs_core::Capabilities;
///
/// // Long polling: binary bodies, and it keeps itself alive (no Pings, no client timeout).
/// let polling = Capabilities::new(true, false);
/// assert!(polling.binary && !polling.keep_alive);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Binary frames: the MessagePack protocol can be used.
    pub binary: bool,
    /// The connection is kept alive with Pings and the client is timed out when it goes
    /// silent (not on long polling, whose polls keep it alive).
    pub keep_alive: bool,
}

impl Capabilities {
    /// A transport with these capabilities.
    pub const fn new(binary: bool, keep_alive: bool) -> Self {
        Self { binary, keep_alive }
    }
}

/// Incoming bytes from a transport: each item is whatever arrived (a WebSocket frame, a
/// POST body); message boundaries are found by the hub protocol. The stream ends when the
/// client closes the transport cleanly, and yields an error when reading fails; a
/// transport that fails elsewhere (a write, a dropped event stream) reports it through
/// [`CloseHandle::transport_lost`].
pub type Incoming = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A transport's new connection, handed to `HubEndpoint::connect`.
pub struct TransportConnection {
    /// The public connection id.
    pub connection_id: ConnectionId,
    /// The HTTP request that opened the transport.
    pub request: Request,
    /// Which transport, for hub code that asks ([`Context::transport`](crate::Context::transport)).
    pub transport: TransportKind,
    /// What the transport can do.
    pub capabilities: Capabilities,
    /// The bytes the client sends, handshake first.
    pub incoming: Incoming,
}

/// What the transport runs for a connection.
pub struct Connected {
    /// Frames to write to the client, in order.
    pub outgoing: Outgoing,
    /// Cancelled once the connection has queued its last frame: the transport writes
    /// what is still in `outgoing`, then closes.
    pub closed: CancellationToken,
    /// The connection's end: the transport reports its own failures here
    /// ([`CloseHandle::transport_lost`]).
    pub close_handle: CloseHandle,
    /// The connection's task: handshake, dispatch, keep-alive, teardown. Run it to
    /// completion.
    pub task: BoxFuture<()>,
}
