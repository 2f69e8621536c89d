//! What a connection is doing, and what happened to it.

use std::time::Duration;

use hubs_protocol::TransportKind;

/// The state of a [`HubConnection`](crate::HubConnection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected (not started, stopped, or given up).
    #[default]
    Disconnected,
    /// Starting.
    Connecting,
    /// Connected.
    Connected,
    /// Lost, trying to reconnect, or (with stateful reconnect) to resume.
    Reconnecting,
}

/// Something that happened to a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Lost; reconnecting or resuming (with the reason).
    Reconnecting(Option<String>),
    /// Reconnected: a new connection, with its id. Groups and pending calls of the old one
    /// are gone.
    Reconnected(Option<String>),
    /// Resumed (stateful reconnect): the same connection, with its id, groups and pending
    /// calls; every message sent meanwhile in either direction is delivered once, in order.
    Resumed,
    /// Closed for good (with the reason, if it was not a clean stop). Nothing follows it
    /// until the next `start`.
    Closed(Option<String>),
    /// The connection's authentication was refreshed (by the timer of
    /// [`with_authentication_refresh`](crate::HubConnectionBuilder::with_authentication_refresh)
    /// or by [`refresh_authentication`](crate::HubConnection::refresh_authentication)),
    /// with the new token lifetime the server reported, if any. The refresh a long poll
    /// asks for (a 409 `authentication_refresh_required`) is not announced.
    AuthenticationRefreshed(Option<Duration>),
    /// An authentication refresh failed (with why). The connection stays open; the
    /// timer does not try again, so the server's handling of the expired token decides
    /// what happens next.
    AuthenticationRefreshFailed(String),
}

/// What the supervisor publishes for the handle's getters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    pub(crate) state: ConnectionState,
    pub(crate) connection_id: Option<String>,
    pub(crate) transport: Option<TransportKind>,
    pub(crate) stateful: bool,
}
