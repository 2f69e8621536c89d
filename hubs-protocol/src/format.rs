//! The two hub protocols and what each needs of a transport: names, versions, framing bytes.

use std::fmt;

/// The byte that ends every JSON message and the handshake: ASCII record separator.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The default limit on one incoming message, as in ASP.NET Core: 32 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024;

/// A hub protocol: how hub messages become bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `json`: UTF-8 JSON objects ended by [`RECORD_SEPARATOR`]; text transfer format.
    Json,
    /// `messagepack`: VarInt length prefix and a MessagePack array; binary transfer format.
    MessagePack,
}

impl Protocol {
    /// Both protocols, in the order a server offers them.
    pub const ALL: [Protocol; 2] = [Protocol::Json, Protocol::MessagePack];

    /// The highest protocol version this implementation speaks (2 adds stateful reconnect).
    pub const MAX_VERSION: u32 = 2;

    /// The name used in the handshake: `json` or `messagepack`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MessagePack => "messagepack",
        }
    }

    /// Looks a protocol up by its handshake name, ignoring case, as the official server does.
    ///
    /// ```
    /// # use hubs_protocol::Protocol;
    /// assert_eq!(Protocol::from_name("MessagePack"), Some(Protocol::MessagePack));
    /// assert_eq!(Protocol::from_name("xml"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether the protocol needs a transport that carries text or binary data.
    pub fn transfer_format(self) -> TransferFormat {
        match self {
            Self::Json => TransferFormat::Text,
            Self::MessagePack => TransferFormat::Binary,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a transport has to carry for a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text (WebSocket text frames; the only format Server-Sent Events carry).
    Text,
    /// Arbitrary bytes (WebSocket binary frames).
    Binary,
}

impl TransferFormat {
    /// The name used in negotiate responses: `Text` or `Binary`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "Text",
            Self::Binary => "Binary",
        }
    }
}
