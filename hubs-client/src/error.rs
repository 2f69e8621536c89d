//! What can fail: starting a connection, its handshake, calls to the server, and
//! authentication refresh.

use std::time::Duration;

use hubs_protocol::DecodeError;
use hubs_protocol::{HubError, wire};

/// A connection could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The URL is not an `http(s)://` or `ws(s)://` URL the client can use.
    #[error("invalid URL `{0}`")]
    Url(String),
    /// Negotiate failed (the text is the server's error, or the HTTP status).
    #[error("Failed to complete negotiation with the server: {0}")]
    Negotiate(String),
    /// No transport could be opened.
    #[error("Unable to connect to the server with any of the available transports. {0}")]
    Transport(String),
    /// The transport opened but the handshake did not complete: the server refused it,
    /// did not answer in time, or answered with something that is not a handshake answer.
    #[error(transparent)]
    Handshake(HandshakeError),
    /// The connection is not in the state the call needs.
    #[error("{}", wire::NOT_DISCONNECTED)]
    State,
    /// `stop` was called before the connection was established.
    #[error("The connection was stopped during negotiation.")]
    Stopped,
    /// TLS could not be set up (an `https://` URL with the `tls` feature off, or a bad
    /// certificate configuration).
    #[error("TLS: {0}")]
    Tls(String),
    /// A header given to [`HubConnectionBuilder::header`](crate::HubConnectionBuilder::header)
    /// has a name or a value that HTTP does not allow (the header's name; the value is
    /// left out, as it may be a secret).
    #[error("invalid header `{0}`: its name or value is not allowed in HTTP")]
    Header(String),
}

/// The handshake (the first exchange on an open transport) failed: why, in
/// [`StartError::Handshake`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server did not answer within the handshake timeout
    /// ([`HubConnectionBuilder::handshake_timeout`](crate::HubConnectionBuilder::handshake_timeout)).
    #[error("the server did not answer the handshake within {0:?}")]
    TimedOut(Duration),
    /// The server answered with an error (its text, as it sent it): typically a protocol
    /// or version it does not speak.
    #[error("Server returned handshake error: {0}")]
    Refused(String),
    /// The server answered with something that is not a handshake answer: not JSON, a
    /// hub message, or more than the handshake's size limit without a record separator
    /// (a server that is not a SignalR hub, or a proxy's page).
    #[error("the server's handshake answer is malformed: {0}")]
    Malformed(String),
    /// The server closed the transport before it answered.
    #[error("the server closed the connection during the handshake")]
    Closed,
}

/// A call to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The server's error text, as it sent it.
    #[error("{0}")]
    Server(String),
    /// The connection is not connected.
    #[error("{}", wire::NOT_CONNECTED)]
    NotConnected,
    /// The connection closed before the result arrived.
    #[error("{0}")]
    Closed(String),
    /// The arguments could not be encoded.
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    /// The result did not have the expected shape.
    #[error("cannot bind the result: {0}")]
    Bind(#[source] DecodeError),
}

/// An authentication refresh
/// ([`HubConnection::refresh_authentication`](crate::HubConnection::refresh_authentication))
/// failed. The connection is left as it was: it stays open, with the token it had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The connection is not connected (not started, stopped, starting or reconnecting),
    /// or it stopped or was lost before the refresh completed.
    #[error("Cannot refresh authentication when the connection is not active.")]
    NotConnected,
    /// The connection did not negotiate: it skips negotiation
    /// ([`HubConnectionBuilder::skip_negotiation`](crate::HubConnectionBuilder::skip_negotiation))
    /// or runs over a [`Connector`](crate::Connector). Only negotiated HTTP connections
    /// have a connection token to refresh.
    #[error("Authentication refresh is only supported with HTTP-based connections.")]
    NotHttp,
    /// The server answered with a status other than 200, with the `error` code of its
    /// JSON body (`{"error":"…"}`) when it sent one: `refresh_disabled` (404),
    /// `missing_connection_token` (400), `invalid_token` (401), `connection_not_found`
    /// (404), `permission_change_rejected` (403)…
    #[error(
        "Unexpected status code returned from authentication refresh '{status}'{}",
        .error.as_ref().map(|code| format!(" ({code})")).unwrap_or_default()
    )]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `error` field of the JSON body, when there is one.
        error: Option<String>,
    },
    /// The server answered 200 with a body that is not JSON.
    #[error("Invalid authentication refresh response received: {0}")]
    InvalidResponse(String),
    /// The request could not be sent or its answer not read (the connection refused,
    /// TLS, no answer within 100 s…).
    #[error("authentication refresh failed: {0}")]
    Transport(String),
}

impl From<InvokeError> for HubError {
    fn from(error: InvokeError) -> Self {
        HubError::new(error.to_string())
    }
}
