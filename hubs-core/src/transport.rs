//! The contract between transports and the hub runtime: what a transport hands a hub for
//! each connection, and what it gets back. Core sees what a transport can do
//! ([`Capabilities`]), never which one it is.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

use hubs_protocol::TransportKind;

use crate::connection::{EndHandle, Outgoing};
use crate::connection_id::ConnectionId;
use crate::context::Request;
use crate::hub::BoxFuture;
use crate::options::HubOptions;

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
/// [`EndHandle::transport_lost`].
pub type Incoming = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A transport's new connection, handed to [`HubEndpoint::connect`].
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
    pub finished: CancellationToken,
    /// The connection's end: the transport reports its own failures here
    /// ([`EndHandle::transport_lost`]).
    pub end: EndHandle,
    /// The connection's task: handshake, dispatch, keep-alive, teardown. Run it to
    /// completion.
    pub task: BoxFuture<()>,
}

/// A mounted hub as transports see it: type-erased, so one server holds many hubs.
pub trait HubEndpoint: Send + Sync + 'static {
    /// The hub's options (protocols, limits, timeouts).
    fn options(&self) -> &HubOptions;

    /// Starts a connection.
    fn connect(self: Arc<Self>, connection: TransportConnection) -> Connected;

    /// The endpoint as `Any`, for finding the runtime of a hub type (a hub context).
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// Ends every connection of the hub: each gets a Close that allows reconnecting (to
    /// another server), and pending client results fail.
    fn shutdown(&self);

    /// Whether the endpoint reads whole transport messages (a raw connection handler
    /// sees one WebSocket message at a time) rather than a byte stream cut anywhere (the
    /// hub protocol finds its own message boundaries, so a WebSocket message of any size
    /// is read in pieces). Default `false`.
    fn whole_messages(&self) -> bool {
        false
    }

    /// Whether the hub has a requirement of its connections (then every request is
    /// checked with [`authorize`](Self::authorize)).
    fn has_requirement(&self) -> bool {
        false
    }

    /// Whether `user` may connect to the hub (its `#[hub(authorize ...)]` requirement);
    /// the transports ask on every request that opens or carries a connection.
    fn authorize(
        &self,
        user: Option<Arc<crate::identity::User>>,
    ) -> BoxFuture<crate::authorization::Verdict> {
        let _ = user;
        Box::pin(async { crate::authorization::Verdict::Allowed })
    }
}
