//! Negotiated connections, by token: waiting for a transport, running, and briefly after
//! they close (so a late long poll gets 204 rather than 404).
//!
//! Every operation is O(1) (amortized) under one short lock. Entries that wait
//! (negotiated but unused, or closed) expire on a timer, in the order they started
//! waiting, and the table shrinks when it empties out. Unused negotiations are capped:
//! at the cap the oldest unused one is evicted (its token then gets `404`, as an expired
//! one does), so a flood of negotiates costs bounded memory and never locks out a real
//! client, whose transport follows its negotiate within moments.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubs_core::{ConnectionId, Throttle, meters};

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

/// How many unused negotiations a new one evicted (at the cap).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Evicted(pub(crate) usize);

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

/// Entries in the order they started waiting: (deadline, token, generation). Every wait
/// is equally long, so deadline order is arrival order.
type Queue = VecDeque<(Instant, String, u64)>;

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Negotiations, oldest first (those attached or closed since are stale records).
    negotiated: Queue,
    /// Closed connections, oldest first.
    closed: Queue,
    pending: usize,
    next_generation: u64,
}

impl Table {
    fn schedule(&mut self, token: &str, since: Instant, negotiated: bool) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        let record = (since + DISCONNECT_TIMEOUT, token.to_owned(), generation);
        if negotiated {
            self.negotiated.push_back(record);
        } else {
            self.closed.push_back(record);
        }
        generation
    }

    /// Removes the entry of a queue's record if the record is still its current one in a
    /// waiting state; whether it did.
    fn remove_current(&mut self, token: &str, generation: u64) -> bool {
        let current = self.entries.get(token).is_some_and(|entry| {
            entry.generation == generation
                && matches!(entry.state, State::Negotiated { .. } | State::Closed)
        });
        if !current {
            return false;
        }
        if let Some(entry) = self.entries.remove(token)
            && matches!(entry.state, State::Negotiated { .. })
        {
            self.pending -= 1;
        }
        true
    }

    /// Evicts the oldest unused negotiation; whether there was one.
    fn evict_oldest(&mut self) -> bool {
        while let Some((_, token, generation)) = self.negotiated.pop_front() {
            if self.remove_current(&token, generation) {
                return true;
            }
        }
        false
    }

    fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        for closed in [false, true] {
            loop {
                let queue = if closed {
                    &mut self.closed
                } else {
                    &mut self.negotiated
                };
                match queue.front() {
                    Some((deadline, _, _)) if *deadline <= now => {}
                    _ => break,
                }
                let Some((_, token, generation)) = queue.pop_front() else {
                    break;
                };
                removed += usize::from(self.remove_current(&token, generation));
            }
        }
        if removed > 0 {
            self.shrink();
        }
        removed
    }

    /// Gives memory back once the table is mostly empty.
    fn shrink(&mut self) {
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to_fit();
        }
        for queue in [&mut self.negotiated, &mut self.closed] {
            if queue.capacity() > 64 && queue.len() * 4 < queue.capacity() {
                queue.shrink_to_fit();
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    table: Mutex<Table>,
    max_pending: usize,
    sweeping: AtomicBool,
    /// Rate-limits the warning about evictions.
    evictions: Throttle,
}

impl Registry {
    /// A registry that holds at most `max_pending` negotiated connections whose transport
    /// has not come yet.
    pub(crate) fn new(max_pending: usize) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::default(),
            max_pending,
            sweeping: AtomicBool::new(false),
            evictions: Throttle::new(),
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

    /// Records a negotiated connection, evicting the oldest unused ones at the cap.
    pub(crate) fn negotiated(
        self: &Arc<Self>,
        token: String,
        connection_id: ConnectionId,
        hub: usize,
        stateful: bool,
    ) -> Evicted {
        self.start_sweeping();
        let now = Instant::now();
        let mut table = self.lock();
        let mut evicted = 0;
        while table.pending >= self.max_pending.max(1) && table.evict_oldest() {
            evicted += 1;
        }
        let generation = table.schedule(&token, now, true);
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
        drop(table);
        if evicted > 0 {
            metrics::counter!(meters::names::NEGOTIATIONS_EVICTED).increment(evicted as u64);
            if let Some(count) = self.evictions.allow() {
                tracing::warn!(
                    count,
                    max_pending = self.max_pending,
                    "unused negotiations evicted to make room for new ones (a negotiate flood?)"
                );
            }
        }
        Evicted(evicted)
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

    /// The id of the running connection (its transport started) behind `token` on
    /// `hub`: what an authentication refresh reaches.
    pub(crate) fn running(&self, token: &str, hub: usize) -> Option<ConnectionId> {
        let table = self.lock();
        let entry = table.entries.get(token).filter(|entry| entry.hub == hub)?;
        match entry.state {
            State::WebSocket | State::Resumable(_) | State::Http(_) => {
                Some(entry.connection_id.clone())
            }
            State::Negotiated { .. } | State::Closed => None,
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
        let generation = table.schedule(token, now, false);
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
            let generation = table.schedule(&token, start, true);
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
    async fn attached_connections_do_not_expire_and_the_oldest_pending_is_evicted() {
        let registry = Registry::new(2);
        let negotiate =
            |token: &str| registry.negotiated(token.into(), ConnectionId::from(token), 0, false);
        assert_eq!(negotiate("a"), Evicted(0));
        assert_eq!(negotiate("b"), Evicted(0));
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
        assert_eq!(negotiate("c"), Evicted(0), "a's place came back");
        // At the cap, the oldest unused one goes (b), never an attached one (a).
        assert_eq!(negotiate("d"), Evicted(1));
        assert!(matches!(registry.lookup("b", 0), Lookup::NotFound));
        assert!(matches!(registry.lookup("a", 0), Lookup::WebSocket));
        assert!(matches!(registry.lookup("c", 0), Lookup::Negotiated(..)));
        assert_eq!(registry.sizes(), (3, 2));
        let later = Instant::now() + DISCONNECT_TIMEOUT;
        registry.lock().sweep(later);
        assert_eq!(registry.sizes(), (1, 0), "only the attached one is left");
        registry.closed("a");
        assert!(matches!(registry.lookup("a", 0), Lookup::Closed));
        registry.lock().sweep(later + DISCONNECT_TIMEOUT);
        assert_eq!(registry.sizes(), (0, 0));
    }

    #[tokio::test]
    async fn a_flood_at_the_cap_keeps_memory_bounded() {
        let registry = Registry::new(1_000);
        for i in 0..20_000 {
            let token = format!("t{i}");
            registry.negotiated(token.clone(), ConnectionId::from("c"), 0, false);
            if i % 100 == 0 {
                // A real client among the flood: attached at once, never evicted.
                assert!(registry.attach_websocket(&token, None).is_some(), "{i}");
            }
        }
        let table = registry.lock();
        assert_eq!(table.pending, 1_000);
        assert_eq!(
            table.entries.len(),
            1_200,
            "the pending ones and the attached"
        );
        assert!(
            table.negotiated.len() <= 1_200,
            "evicted records leave the queue: {}",
            table.negotiated.len()
        );
    }
}
