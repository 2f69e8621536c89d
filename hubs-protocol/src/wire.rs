//! Every text of the official SignalR server and clients that hubs reproduces: invocation
//! and close errors, handshake and negotiate refusals, transport answers, and what the
//! official clients report. Compatibility with the official implementation is a diff of
//! this one file; each text is checked against `protocol.md` in the tests below.
//!
//! Rust errors stay Rust errors elsewhere; hubs-core's `DispatchError` composes its texts
//! from the functions here.

/// An error's short type name and message, appended as ` {type}: {message}` when shown.
pub type Detail<'a> = (&'a str, &'a str);

/// Appends ` {type}: {message}` when there is a detail to show.
pub fn with_detail(mut text: String, detail: Option<Detail<'_>>) -> String {
    if let Some((type_name, message)) = detail {
        text.push(' ');
        text.push_str(type_name);
        text.push_str(": ");
        text.push_str(message);
    }
    text
}

// ---------------------------------------------------------------------------------------
// Invocations (Completion errors)

/// `An unexpected error occurred invoking '{method}' on the server.` plus the detail.
pub fn unexpected_error(method: &str, detail: Option<Detail<'_>>) -> String {
    with_detail(
        format!("An unexpected error occurred invoking '{method}' on the server."),
        detail,
    )
}

/// `Failed to invoke '{method}' due to an error on the server.` plus the detail: the
/// arguments could not be bound.
pub fn bind_failed(method: &str, detail: Option<Detail<'_>>) -> String {
    with_detail(
        format!("Failed to invoke '{method}' due to an error on the server."),
        detail,
    )
}

/// What the official server answers, with its built-in protocols, to a method that does
/// not exist.
pub fn unknown_method(method: &str) -> String {
    bind_failed(method, Some(("HubException", "Method does not exist.")))
}

/// A method the caller is not allowed to invoke.
pub fn unauthorized_method(method: &str) -> String {
    format!("Failed to invoke '{method}' because user is unauthorized")
}

/// An Invocation (not a StreamInvocation) of a streaming method.
pub fn streaming_method_invoked(method: &str) -> String {
    format!(
        "The client attempted to invoke the streaming '{method}' method with a non-streaming invocation."
    )
}

/// A StreamInvocation of a method that does not stream.
pub fn non_streaming_method_streamed(method: &str) -> String {
    format!(
        "The client attempted to invoke the non-streaming '{method}' method with a streaming invocation."
    )
}

/// The invocation's `streamIds` do not match the method's upload parameters.
pub fn stream_count_mismatch(method: &str, sent: usize, expected: usize) -> String {
    unexpected_error(
        method,
        Some((
            "HubException",
            &format!("Client sent {sent} stream(s), Hub method expects {expected}."),
        )),
    )
}

/// A StreamInvocation whose id is already streaming.
pub fn invocation_id_in_use(id: &str) -> String {
    format!("Invocation ID '{id}' is already in use.")
}

/// `Invocation provides {n} argument(s) but target expects {m}.` (a bind detail).
pub fn argument_count_mismatch(provided: usize, expected: usize) -> String {
    format!("Invocation provides {provided} argument(s) but target expects {expected}.")
}

/// A stream that fails once it has started.
pub const STREAMING_FAILED: &str = "An error occurred on the server while streaming results.";

/// What an upload stream yields when its connection ended before the client completed
/// it (not an official text: the official server ends such a stream silently).
pub const UPLOAD_CONNECTION_ENDED: &str = "The connection ended before the stream completed.";

/// What an upload stream yields when its invocation ended before the client completed it
/// and something still reads it (not an official text).
pub const UPLOAD_INVOCATION_ENDED: &str = "The invocation ended before the stream completed.";

/// What an upload stream yields when the client sent more than the server buffers for
/// it (not an official text: the official server stops reading instead).
pub fn upload_overflow(stream_id: &str, max_bytes: usize) -> String {
    format!(
        "Client stream '{stream_id}' exceeded the {max_bytes}-byte upload buffer of its connection and was dropped."
    )
}

/// An invocation refused because too many wait for a slot on the connection (not an
/// official text: the official server stops reading instead).
pub fn too_many_queued(method: &str, max: usize) -> String {
    unexpected_error(
        method,
        Some((
            "HubException",
            &format!("Too many invocations ({max}) are waiting on this connection."),
        )),
    )
}

// ---------------------------------------------------------------------------------------
// Closing a connection (Close errors)

/// `Connection closed with an error.` plus the detail.
pub fn closed_with_error(detail: Option<Detail<'_>>) -> String {
    with_detail("Connection closed with an error.".to_owned(), detail)
}

/// The detail of a Close for a message over the size limit.
pub fn message_too_large(max: usize) -> String {
    format!(
        "The maximum message size of {max}B was exceeded. The message size can be configured in AddHubOptions."
    )
}

/// The detail of a Close for a client that went silent.
pub const CLIENT_TIMEOUT: &str =
    "Client hasn't sent a message/ping within the configured ClientTimeoutInterval.";

// ---------------------------------------------------------------------------------------
// Handshake

/// The client asked for a protocol the hub does not offer.
pub fn protocol_not_supported(name: &str) -> String {
    format!("The protocol '{name}' is not supported.")
}

/// The client asked for a protocol version newer than the server's.
pub fn protocol_version_not_supported(name: &str, version: u32) -> String {
    format!("The server does not support version {version} of the '{name}' protocol.")
}

/// A binary protocol on a transport that carries text only.
pub fn transfer_format_not_supported(name: &str) -> String {
    format!(
        "Cannot use the '{name}' protocol on the current transport. The transport does not support 'Binary' transfer format."
    )
}

/// The handshake did not arrive in time (or was too large).
pub const HANDSHAKE_CANCELED: &str = "Handshake was canceled.";

/// The handshake could not be parsed.
pub const HANDSHAKE_FAILED: &str = "An unexpected error occurred during connection handshake.";

// ---------------------------------------------------------------------------------------
// Client results, as the server reports them to hub code

/// The connection ended before the client answered.
pub fn connection_disconnected(id: &str) -> String {
    format!("Connection '{id}' disconnected.")
}

/// No connection has this id.
pub fn connection_does_not_exist(id: &str) -> String {
    format!("Connection '{id}' does not exist.")
}

/// The client's result has another shape than the hub method expects.
pub fn result_not_bound(type_name: &str, detail: &str) -> String {
    format!("Error trying to deserialize result to {type_name}. {detail}")
}

/// What a client without a handler for a client-result method answers.
pub const NO_CLIENT_RESULT: &str = "Client didn't provide a result.";

// ---------------------------------------------------------------------------------------
// Negotiate and the HTTP transports

/// A negotiate version the server does not speak.
pub fn negotiate_version_not_supported(version: &str) -> String {
    format!(
        "The client requested version '{version}', but the server does not support this version."
    )
}

/// A negotiate version that is not a number.
pub const NEGOTIATE_VERSION_NOT_INTEGER: &str =
    "The client requested a non-integer protocol version.";

/// `404` for a token the server does not know.
pub const NO_CONNECTION_WITH_ID: &str = "No Connection with that ID";

/// `400` for a transport request without `id`.
pub const CONNECTION_ID_REQUIRED: &str = "Connection ID required";

/// `400` for a `DELETE` on anything but a long-polling connection.
pub const DELETE_NOT_ALLOWED: &str = "Cannot terminate this connection using the DELETE endpoint.";

/// `405` for a `POST` to a WebSocket connection.
pub const POST_TO_WEBSOCKET: &str = "POST requests are not allowed for WebSocket connections.";

/// `400` for a request of another transport than the connection's.
pub const TRANSPORT_CHANGED: &str = "Cannot change transports mid-connection";

/// `404` for a transport the endpoint does not enable.
pub fn transport_not_supported(transport: &str) -> String {
    format!("{transport} transport not supported by this end point type")
}

/// `503` when the server or the endpoint has as many connections as it takes (not an
/// official text: the official server has no such limit).
pub const SERVER_FULL: &str = "The server has reached its connection limit; try again later.";

// ---------------------------------------------------------------------------------------
// What the official clients report (the Rust client uses the same words)

/// The text of a `429` when a user already runs as many connections as the endpoint
/// allows (`EndpointOptions::max_connections_per_user`); not an official text.
pub const TOO_MANY_FOR_USER: &str =
    "This user has as many connections as the server allows; close one and try again.";

/// The Close error of a connection whose credential expired
/// (`HubOptions::close_on_authentication_expiration`); the official server's text is not
/// part of the contract, only that there is one and reconnecting is not allowed.
pub const AUTHENTICATION_EXPIRED: &str =
    "Connection closed with an error. The connection's authentication expired.";

/// A pending call failed because the connection closed without an error.
pub const INVOCATION_CANCELED_CLOSED: &str =
    "Invocation canceled due to the underlying connection being closed.";

/// The client heard nothing from the server within its server timeout.
pub const SERVER_TIMEOUT: &str =
    "Server timeout elapsed without receiving a message from the server.";

/// A Close from the server carried an error.
pub fn server_closed_with_error(error: &str) -> String {
    format!("Server returned an error on close: {error}")
}

/// A send or invoke on a connection that is not connected.
pub const NOT_CONNECTED: &str =
    "Cannot send data if the connection is not in the 'Connected' State.";

/// `start` on a connection that is not disconnected.
pub const NOT_DISCONNECTED: &str =
    "Cannot start a connection that is not in the 'Disconnected' state.";

/// The server answered negotiate like ASP.NET SignalR (not Core).
pub const LEGACY_SERVER: &str = "Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server.";

#[cfg(test)]
mod tests {
    use super::*;

    /// `protocol.md`, the reference of the wire protocol, beside the repository.
    fn reference() -> Option<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/protocol.md");
        std::fs::read_to_string(path).ok()
    }

    /// Each text as protocol.md spells it, with its placeholders.
    fn texts() -> Vec<String> {
        vec![
            unexpected_error("{target}", None),
            unknown_method("{target}"),
            bind_failed("{target}", None),
            argument_count_mismatch(1, 2),
            unauthorized_method("{target}"),
            streaming_method_invoked("{target}"),
            non_streaming_method_streamed("{target}"),
            stream_count_mismatch("{target}", 0, 0)
                .replace("sent 0", "sent {n}")
                .replace("expects 0", "expects {m}"),
            invocation_id_in_use("{id}"),
            STREAMING_FAILED.to_owned(),
            closed_with_error(None),
            message_too_large(0).replace("0B", "{n}B"),
            CLIENT_TIMEOUT.to_owned(),
            connection_disconnected("{id}"),
            connection_does_not_exist("{id}"),
            INVOCATION_CANCELED_CLOSED.to_owned(),
            SERVER_TIMEOUT.to_owned(),
            server_closed_with_error("<error>"),
            protocol_not_supported("{name}"),
            HANDSHAKE_CANCELED.to_owned(),
            NO_CONNECTION_WITH_ID.to_owned(),
            CONNECTION_ID_REQUIRED.to_owned(),
            DELETE_NOT_ALLOWED.to_owned(),
            POST_TO_WEBSOCKET.to_owned(),
            TRANSPORT_CHANGED.to_owned(),
        ]
    }

    #[test]
    fn texts_match_the_protocol_reference() {
        let Some(reference) = reference() else {
            // The reference lives beside the repository (CI always has it).
            eprintln!("protocol.md not found beside the repository; skipped");
            return;
        };
        let flat = reference.replace('\n', " ");
        let missing: Vec<String> = texts()
            .into_iter()
            .filter(|text| !flat.contains(text.as_str()))
            .collect();
        assert!(missing.is_empty(), "not in protocol.md: {missing:#?}");
    }

    #[test]
    fn unknown_methods_are_named() {
        assert_eq!(
            unknown_method("NoSuchMethodXyz"),
            "Failed to invoke 'NoSuchMethodXyz' due to an error on the server. HubException: Method does not exist."
        );
    }
}
