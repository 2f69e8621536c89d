//! Connection ids.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The public id of a connection: what `Context::connection_id` returns and
/// `clients.client(id)` takes. Cheap to clone.
///
/// Generated ids are 16 random bytes in unpadded base64url (22 characters), as the official
/// server makes them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(Arc<str>);

impl ConnectionId {
    /// A new random id.
    pub fn generate() -> Self {
        Self(random_token().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 16 bytes from the operating system's CSPRNG, base64url without padding.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    // Without a working OS random source nothing here is safe; fall back to a hash of
    // the time and a counter only so that ids stay unique.
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes[8..].copy_from_slice(&(t as u64).to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<String> for ConnectionId {
    fn from(id: String) -> Self {
        Self(id.into())
    }
}

impl From<&str> for ConnectionId {
    fn from(id: &str) -> Self {
        Self(id.into())
    }
}

impl AsRef<str> for ConnectionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for ConnectionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ConnectionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}
