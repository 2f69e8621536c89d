//! Negotiated connections, by token, until a transport attaches and while it runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hubs_core::{ConnectionId, TransportKind};

/// How long a negotiated connection may wait for its transport (DisconnectTimeout).
pub(crate) const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Entry {
    connection_id: ConnectionId,
    hub: usize,
    negotiated_at: Instant,
    transport: Option<TransportKind>,
}

/// Why a transport cannot attach to a token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AttachError {
    /// Unknown or expired token.
    NotFound,
    /// The token belongs to another hub.
    OtherHub,
    /// A transport is already attached.
    InUse(TransportKind),
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a negotiated connection, and forgets those whose transport never came.
    pub(crate) fn negotiated(&self, token: String, connection_id: ConnectionId, hub: usize) {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, e| {
            e.transport.is_some() || now.duration_since(e.negotiated_at) < DISCONNECT_TIMEOUT
        });
        entries.insert(
            token,
            Entry {
                connection_id,
                hub,
                negotiated_at: now,
                transport: None,
            },
        );
    }

    /// Attaches a transport to a negotiated connection.
    pub(crate) fn attach(
        &self,
        token: &str,
        hub: usize,
        transport: TransportKind,
    ) -> Result<ConnectionId, AttachError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(token).ok_or(AttachError::NotFound)?;
        if entry.transport.is_none() && entry.negotiated_at.elapsed() >= DISCONNECT_TIMEOUT {
            entries.remove(token);
            return Err(AttachError::NotFound);
        }
        if entry.hub != hub {
            return Err(AttachError::OtherHub);
        }
        if let Some(current) = entry.transport {
            return Err(AttachError::InUse(current));
        }
        entry.transport = Some(transport);
        Ok(entry.connection_id.clone())
    }

    /// The transport attached to a token, if the connection is live.
    pub(crate) fn transport(&self, token: &str) -> Option<Option<TransportKind>> {
        self.lock().get(token).map(|e| e.transport)
    }

    /// Forgets a connection that ended.
    pub(crate) fn remove(&self, token: &str) {
        self.lock().remove(token);
    }
}
