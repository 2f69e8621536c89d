//! Negotiated connections, by token: waiting for a transport, running, and briefly after
//! they end (so a late long poll gets 204 rather than 404).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubs_core::{ConnectionId, TransportKind};

use crate::http_transport::HttpConnection;

/// How long a negotiated connection may wait for its transport, and how long an ended one
/// is remembered (DisconnectTimeout).
pub(crate) const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Entry {
    connection_id: ConnectionId,
    hub: usize,
    since: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    Negotiated,
    WebSocket,
    Http(Arc<HttpConnection>),
    Ended,
}

/// What a request finds under a token.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Unknown or expired.
    NotFound,
    /// The token belongs to another hub.
    OtherHub,
    /// Negotiated, no transport yet.
    Negotiated(ConnectionId),
    /// A WebSocket is attached.
    WebSocket,
    /// Server-Sent Events or long polling.
    Http(Arc<HttpConnection>),
    /// The connection ended a moment ago.
    Ended,
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

    /// Records a negotiated connection, and forgets those whose transport never came and
    /// those that ended a while ago.
    pub(crate) fn negotiated(&self, token: String, connection_id: ConnectionId, hub: usize) {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, e| match e.state {
            State::Negotiated | State::Ended => now.duration_since(e.since) < DISCONNECT_TIMEOUT,
            State::WebSocket | State::Http(_) => true,
        });
        entries.insert(
            token,
            Entry {
                connection_id,
                hub,
                since: now,
                state: State::Negotiated,
            },
        );
    }

    /// What is known under `token` for `hub`.
    pub(crate) fn lookup(&self, token: &str, hub: usize) -> Lookup {
        let entries = self.lock();
        let Some(entry) = entries.get(token) else {
            return Lookup::NotFound;
        };
        if entry.hub != hub {
            return Lookup::OtherHub;
        }
        match &entry.state {
            State::Negotiated if entry.since.elapsed() >= DISCONNECT_TIMEOUT => Lookup::NotFound,
            State::Negotiated => Lookup::Negotiated(entry.connection_id.clone()),
            State::WebSocket => Lookup::WebSocket,
            State::Http(connection) => Lookup::Http(connection.clone()),
            State::Ended if entry.since.elapsed() >= DISCONNECT_TIMEOUT => Lookup::NotFound,
            State::Ended => Lookup::Ended,
        }
    }

    /// Attaches a WebSocket to a negotiated connection; `false` if it is no longer waiting.
    pub(crate) fn attach_websocket(&self, token: &str) -> bool {
        self.attach(token, State::WebSocket)
    }

    /// Attaches an SSE or long-polling connection; `false` if it is no longer waiting.
    pub(crate) fn attach_http(&self, token: &str, connection: Arc<HttpConnection>) -> bool {
        self.attach(token, State::Http(connection))
    }

    fn attach(&self, token: &str, state: State) -> bool {
        let mut entries = self.lock();
        match entries.get_mut(token) {
            Some(entry) if matches!(entry.state, State::Negotiated) => {
                entry.state = state;
                entry.since = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// The connection ended: remembered as ended for a while, then forgotten.
    pub(crate) fn ended(&self, token: &str) {
        if let Some(entry) = self.lock().get_mut(token) {
            entry.state = State::Ended;
            entry.since = Instant::now();
        }
    }
}

impl Lookup {
    /// The transport attached, if any.
    pub(crate) fn transport(&self) -> Option<TransportKind> {
        match self {
            Self::WebSocket => Some(TransportKind::WebSockets),
            Self::Http(connection) => Some(connection.transport()),
            _ => None,
        }
    }
}
