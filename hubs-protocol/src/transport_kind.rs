//! The three transports of SignalR, by name.

/// A transport a hub can be reached by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebSockets (full duplex).
    WebSockets,
    /// Server-Sent Events for server-to-client, POST for client-to-server.
    ServerSentEvents,
    /// Long polling for server-to-client, POST for client-to-server.
    LongPolling,
}

impl TransportKind {
    /// The name used in negotiate responses and by `GetActiveTransportName`.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSockets => "WebSockets",
            Self::ServerSentEvents => "ServerSentEvents",
            Self::LongPolling => "LongPolling",
        }
    }

    /// Whether the transport carries binary data (MessagePack).
    pub fn supports_binary(self) -> bool {
        self != Self::ServerSentEvents
    }
}
