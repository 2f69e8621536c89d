//! What servers publish to each other (MessagePack).

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Envelope {
    /// An invocation for clients, encoded for both protocols.
    Send {
        origin: String,
        excluded: Vec<String>,
        #[serde(with = "serde_bytes")]
        json: Vec<u8>,
        #[serde(with = "serde_bytes")]
        messagepack: Vec<u8>,
        /// When it was published, in milliseconds since the Unix epoch (for the lag).
        #[serde(default)]
        sent_at_ms: u64,
    },
    /// Add (or remove) a connection to (from) a group; acknowledged.
    Group {
        origin: String,
        request: u64,
        connection: String,
        group: String,
        add: bool,
    },
    /// Ask a connection for a client result.
    Invoke {
        origin: String,
        request: u64,
        connection: String,
        target: String,
        json: Vec<serde_bytes::ByteBuf>,
        messagepack: Vec<serde_bytes::ByteBuf>,
        timeout_ms: u64,
    },
    /// A group change was made.
    Ack { request: u64 },
    /// A client result came back.
    Result { request: u64, outcome: WireOutcome },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireOutcome {
    Void,
    Value {
        messagepack: bool,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Error(String),
    /// The owning server could not obtain a result (disconnect, timeout).
    Failed(String),
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Envelope {
    pub(crate) fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        rmp_serde::from_slice(bytes).ok()
    }
}
