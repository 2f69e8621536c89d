//! What servers publish to each other (MessagePack).

use serde::{Deserialize, Serialize};

/// What travels on a channel: an envelope, numbered by its server. Numbers grow in
/// publish order, so a receiver drops what it has seen (a publish retried after Redis had
/// in fact accepted it).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Packet {
    pub(crate) origin: String,
    pub(crate) seq: u64,
    pub(crate) envelope: Envelope,
}

/// The connections a multi-target send is for, chosen by each server among its own (so
/// a connection in two of the groups gets the message once).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Targets {
    Groups(Vec<String>),
    Users(Vec<String>),
    Connections(Vec<String>),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Envelope {
    /// An invocation for clients, encoded for both protocols: for the channel's
    /// connections, or for `targets` (published on the channel every server hears).
    Send {
        origin: String,
        targets: Option<Targets>,
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
    /// Close a connection (a kick from another server); acknowledged if it was there.
    Kick {
        origin: String,
        request: u64,
        connection: String,
        /// The Close's error, if the close gave one (absent from a kick of a server from
        /// before reasons: decoded as none).
        #[serde(default)]
        reason: Option<String>,
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

/// A [`Packet`] to encode, borrowing its parts.
#[derive(Serialize)]
struct PacketRef<'a> {
    origin: &'a str,
    seq: u64,
    envelope: &'a Envelope,
}

impl Packet {
    pub(crate) fn encode(origin: &str, seq: u64, envelope: &Envelope) -> Vec<u8> {
        rmp_serde::to_vec(&PacketRef {
            origin,
            seq,
            envelope,
        })
        .unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        rmp_serde::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kick as servers from before close reasons publish it.
    #[derive(Serialize)]
    enum Before {
        Kick {
            origin: String,
            request: u64,
            connection: String,
        },
    }

    #[derive(Serialize)]
    struct BeforePacket {
        origin: String,
        seq: u64,
        envelope: Before,
    }

    #[test]
    fn a_kick_from_before_reasons_decodes_without_one() {
        let kick = Before::Kick {
            origin: "a".into(),
            request: 7,
            connection: "c".into(),
        };
        let bytes = rmp_serde::to_vec(&BeforePacket {
            origin: "a".into(),
            seq: 1,
            envelope: kick,
        })
        .expect("encodes");
        let packet = Packet::decode(&bytes).expect("decodes");
        assert!(matches!(
            packet.envelope,
            Envelope::Kick {
                request: 7,
                reason: None,
                ..
            }
        ));
    }
}
