//! Negotiated connections, by token: waiting for a transport, running, and briefly after
//! they close (so a late long poll gets 204 rather than 404).
//!
//! Every operation is O(1) under one short lock. Entries that wait (negotiated but
//! unused, or closed) expire on a timer, in the order they started waiting, and the table
//! shrinks when it empties out: a flood of unused negotiates costs its entries for 15 s
//! and no more, and is capped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubs_core::ConnectionId;

use crate::http_transport::HttpLink;
use crate::options::DISCONNECT_TIMEOUT;
use crate::stateful::Resume;

/// How often waiting entries are expired (the official server scans every second).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Entry {
    connection_id: ConnectionId,
    hub: usize,
    since: Instant,
    /// Which expiry record is current (older ones are stale).
    generation: u64,
    /// Negotiated with stateful reconnect.
    stateful: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Negotiated, no transport yet; what the client POSTed meanwhile.
    Negotiated {
        posted: Vec<Bytes>,
        posted_bytes: usize,
    },
    WebSocket,
    /// A WebSocket connection that survives its socket (stateful reconnect).
    Resumable(Arc<Resume>),
    Http(Arc<HttpLink>),
    Closed,
}

/// What a request finds under a token.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Unknown or expired.
    NotFound,
    /// The token belongs to another hub.
    OtherHub,
    /// Negotiated, no transport yet; whether with stateful reconnect.
    Negotiated(ConnectionId, bool),
    /// A WebSocket is attached.
    WebSocket,
    /// A WebSocket connection a new socket may resume.
    Resumable(Arc<Resume>),
    /// Server-Sent Events or long polling.
    Http(Arc<HttpLink>),
    /// The connection closed a moment ago.
    Closed,
}

/// Why a negotiate was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyPending;

/// What became of a POST that arrived before the transport.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Posted {
    /// Kept for the transport.
    Kept,
    /// More than the connection may hold before its transport starts.
    TooLarge,
    /// No such connection waits for its transport.
    NotWaiting,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// (deadline, token, generation), in deadline order: every wait is equally long.
    expiry: VecDeque<(Instant, String, u64)>,
    pending: usize,
    next_generation: u64,
}

impl Table {
    fn schedule(&mut self, token: &str, since: Instant) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.expiry
            .push_back((since + DISCONNECT_TIMEOUT, token.to_owned(), generation));
        generation
    }

    fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((deadline, _, _)) = self.expiry.front() {
            if *deadline > now {
                break;
            }
            let Some((_, token, generation)) = self.expiry.pop_front() else {
                break;
            };
            let current = self.entries.get(&token).is_some_and(|entry| {
                entry.generation == generation
                    && matches!(entry.state, State::Negotiated { .. } | State::Closed)
            });
            if current && let Some(entry) = self.entries.remove(&token) {
                if matches!(entry.state, State::Negotiated { .. }) {
                    self.pending -= 1;
                }
                removed += 1;
            }
        }
        if removed > 0 {
            shrink(&mut self.entries);
            if self.expiry.capacity() > 64 && self.expiry.len() * 4 < self.expiry.capacity() {
                self.expiry.shrink_to_fit();
            }
        }
        removed
    }
}

/// Gives memory back once a map is mostly empty.
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    table: Mutex<Table>,
    max_pending: usize,
    sweeping: AtomicBool,
}

impl Registry {
    /// A registry that holds at most `max_pending` negotiated connections whose transport
    /// has not come yet.
    pub(crate) fn new(max_pending: usize) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::default(),
            max_pending,
            sweeping: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the timer that expires waiting entries (once, from within a runtime).
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let registry = Arc::downgrade(self);
        tokio::spawn(sweep(registry));
    }

    /// Records a negotiated connection.
    pub(crate) fn negotiated(
        self: &Arc<Self>,
        token: String,
        connection_id: ConnectionId,
        hub: usize,
        stateful: bool,
    ) -> Result<(), TooManyPending> {
        self.start_sweeping();
        let now = Instant::now();
        let mut table = self.lock();
        if table.pending >= self.max_pending {
            return Err(TooManyPending);
        }
        let generation = table.schedule(&token, now);
        table.pending += 1;
        table.entries.insert(
            token,
            Entry {
                connection_id,
                hub,
                since: now,
                generation,
                stateful,
                state: State::Negotiated {
                    posted: Vec::new(),
                    posted_bytes: 0,
                },
            },
        );
        Ok(())
    }

    /// What is known under `token` for `hub`.
    pub(crate) fn lookup(&self, token: &str, hub: usize) -> Lookup {
        let table = self.lock();
        let Some(entry) = table.entries.get(token) else {
            return Lookup::NotFound;
        };
        if entry.hub != hub {
            return Lookup::OtherHub;
        }
        let expired = entry.since.elapsed() >= DISCONNECT_TIMEOUT;
        match &entry.state {
            State::Negotiated { .. } if expired => Lookup::NotFound,
            State::Negotiated { .. } => {
                Lookup::Negotiated(entry.connection_id.clone(), entry.stateful)
            }
            State::WebSocket => Lookup::WebSocket,
            State::Resumable(resume) => Lookup::Resumable(resume.clone()),
            State::Http(connection) => Lookup::Http(connection.clone()),
            State::Closed if expired => Lookup::NotFound,
            State::Closed => Lookup::Closed,
        }
    }

    /// Keeps what a client POSTs before its transport starts (some clients send the
    /// handshake first), up to `max_bytes`.
    pub(crate) fn post_early(&self, token: &str, body: Bytes, max_bytes: usize) -> Posted {
        let mut table = self.lock();
        match table.entries.get_mut(token).map(|entry| &mut entry.state) {
            Some(State::Negotiated {
                posted,
                posted_bytes,
            }) => {
                if *posted_bytes + body.len() > max_bytes {
                    return Posted::TooLarge;
                }
                *posted_bytes += body.len();
                posted.push(body);
                Posted::Kept
            }
            _ => Posted::NotWaiting,
        }
    }

    /// Attaches a WebSocket to a negotiated connection (one a new socket may resume, with
    /// `resume`); `None` if it is no longer waiting, else what the client POSTed before.
    pub(crate) fn attach_websocket(
        &self,
        token: &str,
        resume: Option<Arc<Resume>>,
    ) -> Option<Vec<Bytes>> {
        self.attach(
            token,
            match resume {
                Some(resume) => State::Resumable(resume),
                None => State::WebSocket,
            },
        )
    }

    /// Attaches an SSE or long-polling connection, which `start` starts with what the
    /// client POSTed before; `None` if the token is no longer waiting (then nothing is
    /// started).
    pub(crate) fn attach_http(
        &self,
        token: &str,
        start: impl FnOnce(Vec<Bytes>) -> Arc<HttpLink>,
    ) -> Option<Arc<HttpLink>> {
        // Under the lock, so a POST cannot slip between the early ones and the start.
        let mut table = self.lock();
        let entry = table.entries.get_mut(token)?;
        let State::Negotiated { posted, .. } = &mut entry.state else {
            return None;
        };
        let connection = start(std::mem::take(posted));
        entry.state = State::Http(connection.clone());
        entry.since = Instant::now();
        table.pending -= 1;
        Some(connection)
    }

    fn attach(&self, token: &str, state: State) -> Option<Vec<Bytes>> {
        let mut table = self.lock();
        let entry = table.entries.get_mut(token)?;
        let State::Negotiated { posted, .. } = &mut entry.state else {
            return None;
        };
        let posted = std::mem::take(posted);
        entry.state = state;
        entry.since = Instant::now();
        table.pending -= 1;
        Some(posted)
    }

    /// The connection closed: remembered as closed for a while, then forgotten.
    pub(crate) fn closed(&self, token: &str) {
        let now = Instant::now();
        let mut table = self.lock();
        if !table.entries.contains_key(token) {
            return;
        }
        let generation = table.schedule(token, now);
        let mut was_pending = false;
        if let Some(entry) = table.entries.get_mut(token) {
            was_pending = matches!(entry.state, State::Negotiated { .. });
            entry.state = State::Closed;
            entry.since = now;
            entry.generation = generation;
        }
        if was_pending {
            table.pending -= 1;
        }
    }

    /// How many tokens are held, and how many of them wait for their transport.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let table = self.lock();
        (table.entries.len(), table.pending)
    }
}

/// Expires waiting entries every second until the registry is gone.
async fn sweep(registry: Weak<Registry>) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let removed = registry.lock().sweep(Instant::now());
        if removed > 0 {
            tracing::trace!(removed, "expired negotiated or closed connections");
        }
    }
}

impl Lookup {
    /// Whether a running connection belongs to another user than `user_id` (a new socket,
    /// a poll or a POST must carry the connection's user).
    pub(crate) fn runs_for_another(&self, user_id: Option<&str>) -> bool {
        match self {
            Self::Resumable(resume) => resume.user_id() != user_id,
            Self::Http(link) => link.user_id() != user_id,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_negotiates_expire_and_the_table_shrinks() {
        let registry = Registry::new(100_000);
        let mut table = registry.lock();
        let start = Instant::now();
        for i in 0..20_000 {
            let token = format!("t{i}");
            let generation = table.schedule(&token, start);
            table.pending += 1;
            table.entries.insert(
                token,
                Entry {
                    connection_id: ConnectionId::from("c"),
                    hub: 0,
                    since: start,
                    generation,
                    stateful: false,
                    state: State::Negotiated {
                        posted: Vec::new(),
                        posted_bytes: 0,
                    },
                },
            );
        }
        let capacity = table.entries.capacity();
        assert_eq!(table.sweep(start + Duration::from_secs(1)), 0);
        assert_eq!(table.sweep(start + DISCONNECT_TIMEOUT), 20_000);
        assert_eq!(table.pending, 0);
        assert!(table.entries.capacity() < capacity / 4, "the table shrank");
    }

    #[tokio::test]
    async fn attached_connections_do_not_expire_and_pending_ones_are_capped() {
        let registry = Registry::new(2);
        registry
            .negotiated("a".into(), ConnectionId::from("a"), 0, false)
            .expect("room");
        registry
            .negotiated("b".into(), ConnectionId::from("b"), 0, false)
            .expect("room");
        assert_eq!(
            registry.negotiated("c".into(), ConnectionId::from("c"), 0, false),
            Err(TooManyPending)
        );
        assert_eq!(
            registry.post_early("a", Bytes::from_static(b"{}"), 2),
            Posted::Kept
        );
        assert_eq!(
            registry.post_early("a", Bytes::from_static(b"x"), 2),
            Posted::TooLarge
        );
        assert_eq!(
            registry.attach_websocket("a", None),
            Some(vec![Bytes::from_static(b"{}")])
        );
        assert_eq!(registry.attach_websocket("a", None), None, "attached once");
        assert_eq!(registry.sizes(), (2, 1));
        registry
            .negotiated("c".into(), ConnectionId::from("c"), 0, false)
            .expect("room again");
        let later = Instant::now() + DISCONNECT_TIMEOUT;
        registry.lock().sweep(later);
        assert_eq!(registry.sizes(), (1, 0), "only the attached one is left");
        registry.closed("a");
        assert!(matches!(registry.lookup("a", 0), Lookup::Closed));
        registry.lock().sweep(later + DISCONNECT_TIMEOUT);
        assert_eq!(registry.sizes(), (0, 0));
    }
}
