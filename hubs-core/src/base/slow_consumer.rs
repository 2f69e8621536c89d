//! What a send does for a recipient that is persistently behind: the byte budget of a
//! connection's outbound queue, the slow-consumer policy of a hub (overridable per
//! connection), and the count of what it cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::base::meters::HubMeters;
use crate::base::throttle::Throttle;

/// How much a connection's outbound queue may hold, in bytes, and when a recipient that
/// has fallen behind counts as *persistently* behind.
///
/// A burst is not a fault: every healthy client falls behind for a moment when thousands
/// of messages are sent at once. So nothing is judged by one full moment. Instead:
///
/// * A connection's **own replies** (Completions, stream items) are always queued; when
///   its queue holds more than [`pause_reading`](Self::pause_reading) bytes, the server
///   stops reading from that client until the queue is back under half of it (ASP.NET
///   Core's pipe pauses at 64 KiB and resumes at 32 KiB). The client's unread messages wait
///   in its socket, and its silence meanwhile is not held against it.
/// * A **send to others** (a fan-out, a send over the backplane, the hub context) is
///   queued, then, when the recipient holds more than [`pace`](Self::pace) bytes, waits
///   for its writer while that writer is taking frames, for
///   [`pace_wait`](Self::pace_wait) at most: a loop of broadcasts runs at the speed of
///   its receivers instead of filling memory, and the others never wait long for one slow
///   receiver. It does not wait at all for a writer that has taken nothing for
///   [`stall`](Self::stall).
/// * A recipient is **persistently behind** when its queue has been over the
///   [`soft_budget`](Self::soft_budget) for longer than [`grace`](Self::grace), when its
///   oldest queued message is older than [`max_lag`](Self::max_lag), or when a message
///   would take it over the [`hard_cap`](Self::hard_cap). Only then does the
///   [`SlowConsumerPolicy`] act (close it, or skip it). The check runs on every send and,
///   while the queue is over its soft budget, on a timer, so an idle stuck reader is cut
///   too.
///
/// A client that never reads is therefore closed within `grace` (plus the transport's
/// `send_timeout`, the limit on a write that makes no progress), and holds at most
/// `hard_cap` bytes meanwhile.
///
/// ```
/// use std::time::Duration;
/// use hubs_core::{HubOptions, OutboundBudget};
///
/// // A hub of large messages to clients on slow links: more room, more patience.
/// let options = HubOptions::default().outbound_budget(
///     OutboundBudget::default()
///         .soft_budget(4 << 20)
///         .grace(Duration::from_secs(15))
///         .hard_cap(64 << 20),
/// );
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboundBudget {
    /// Queued bytes above which the connection stops reading (default 64 KiB); it
    /// reads again under half of it.
    pub pause_reading: usize,
    /// Queued bytes above which a send to others waits (up to `pace_wait`) for the
    /// recipient's writer while it makes progress (default 256 KiB).
    pub pace: usize,
    /// The longest one send waits for a recipient over its pace (default 250 ms).
    pub pace_wait: Duration,
    /// Queued bytes a recipient may stay above for [`grace`](Self::grace) (default 1 MiB).
    pub soft_budget: usize,
    /// How long a recipient may stay over its soft budget (default 5 s).
    pub grace: Duration,
    /// How old the oldest queued message may get (default 30 s).
    pub max_lag: Duration,
    /// Queued bytes no send to others may take a recipient past (default 16 MiB).
    pub hard_cap: usize,
    /// How long a writer may take nothing before senders stop waiting for it at all: a
    /// client busy elsewhere for a moment is still waited for, one that stopped reading is
    /// not (default 1 s).
    pub stall: Duration,
}

impl Default for OutboundBudget {
    fn default() -> Self {
        Self {
            pause_reading: 64 * 1024,
            pace: 256 * 1024,
            pace_wait: Duration::from_millis(250),
            soft_budget: 1 << 20,
            grace: Duration::from_secs(5),
            max_lag: Duration::from_secs(30),
            hard_cap: 16 << 20,
            stall: Duration::from_secs(1),
        }
    }
}

impl OutboundBudget {
    /// Sets [`pause_reading`](Self::pause_reading) (at least 1 byte).
    #[must_use]
    pub fn pause_reading(mut self, bytes: usize) -> Self {
        self.pause_reading = bytes.max(1);
        self
    }

    /// Sets [`pace`](Self::pace).
    #[must_use]
    pub fn pace(mut self, bytes: usize) -> Self {
        self.pace = bytes;
        self
    }

    /// Sets [`pace_wait`](Self::pace_wait).
    #[must_use]
    pub fn pace_wait(mut self, wait: Duration) -> Self {
        self.pace_wait = wait;
        self
    }

    /// Sets [`soft_budget`](Self::soft_budget).
    #[must_use]
    pub fn soft_budget(mut self, bytes: usize) -> Self {
        self.soft_budget = bytes;
        self
    }

    /// Sets [`grace`](Self::grace).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets [`max_lag`](Self::max_lag).
    #[must_use]
    pub fn max_lag(mut self, lag: Duration) -> Self {
        self.max_lag = lag;
        self
    }

    /// Sets [`hard_cap`](Self::hard_cap).
    #[must_use]
    pub fn hard_cap(mut self, bytes: usize) -> Self {
        self.hard_cap = bytes;
        self
    }

    /// Sets [`stall`](Self::stall).
    #[must_use]
    pub fn stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// How often a queue over its soft budget is checked while nothing is sent.
    pub(crate) fn check_period(&self) -> Duration {
        (self.grace.min(self.max_lag) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// What happens to a message for a connection that is persistently behind (see
/// [`OutboundBudget`]).
///
/// A fan-out never waits on a recipient that is not reading unless its policy says so:
/// with the default policy such a client is closed and everyone else is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Close the connection: the client gets a Close carrying an error (it may
    /// reconnect), and the message is not delivered to it.
    Disconnect,
    /// Wait up to this long for the recipient to get back under its soft budget, then
    /// disconnect.
    Wait(Duration),
    /// Leave this message out for this recipient and keep the connection (best-effort
    /// hubs: live positions, typing indicators). Counted and logged.
    Skip,
}

/// The slow-consumer policy of a hub: what happens to a recipient that is persistently
/// behind. One rule for messages to many connections (the Clients targets but `client`
/// and `caller`), one for messages to a single connection (`client`, `caller`, client
/// results). A connection's own Completions and stream items are never refused: they slow
/// its reading instead (see [`OutboundBudget`]).
///
/// ```
/// use std::time::Duration;
/// use hubs_core::{HubOptions, SlowConsumer, SlowConsumerPolicy};
///
/// // A best-effort hub: broadcasts skip a client that cannot keep up.
/// let options = HubOptions::default().slow_consumer(SlowConsumerPolicy {
///     fan_out: SlowConsumer::Skip,
///     direct: SlowConsumer::Wait(Duration::from_secs(5)),
/// });
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowConsumerPolicy {
    /// For messages to several connections (default [`SlowConsumer::Disconnect`]).
    pub fan_out: SlowConsumer,
    /// For messages to one connection (default [`SlowConsumer::Wait`] of 10 s: the sender
    /// waits that long for the recipient to catch up before it is closed).
    pub direct: SlowConsumer,
}

impl Default for SlowConsumerPolicy {
    fn default() -> Self {
        Self {
            fan_out: SlowConsumer::Disconnect,
            direct: SlowConsumer::Wait(Duration::from_secs(10)),
        }
    }
}

/// Whether a message goes to several connections or to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// To several connections: the policy's `fan_out` rule applies.
    FanOut,
    /// To one connection: the policy's `direct` rule applies.
    Direct,
}

impl SlowConsumerPolicy {
    /// The rule for `delivery`.
    pub fn rule(&self, delivery: Delivery) -> SlowConsumer {
        match delivery {
            Delivery::FanOut => self.fan_out,
            Delivery::Direct => self.direct,
        }
    }
}

/// What the slow-consumer policy of a hub has cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlowConsumerStats {
    /// Connections closed because they stayed behind.
    pub disconnected: u64,
    /// Messages left out for a recipient under [`SlowConsumer::Skip`].
    pub skipped: u64,
}

/// The counters behind [`SlowConsumerStats`], shared by a hub's connections, with a
/// warning at most once a second.
#[derive(Debug)]
pub(crate) struct SlowConsumerCounters {
    disconnected: AtomicU64,
    skipped: AtomicU64,
    warnings: Throttle,
    meters: Arc<HubMeters>,
}

impl Default for SlowConsumerCounters {
    fn default() -> Self {
        Self::new(HubMeters::new(""))
    }
}

impl SlowConsumerCounters {
    pub(crate) fn new(meters: Arc<HubMeters>) -> Self {
        Self {
            disconnected: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            warnings: Throttle::new(),
            meters,
        }
    }

    pub(crate) fn disconnected(
        &self,
        connection: &str,
        reason: &str,
        (bytes, frames, oldest): (usize, usize, Duration),
    ) {
        self.disconnected.fetch_add(1, Ordering::Relaxed);
        self.meters.slow_consumer("disconnected");
        tracing::info!(
            %connection,
            reason,
            queued_bytes = bytes,
            queued_messages = frames,
            oldest_ms = oldest.as_millis() as u64,
            "closing a slow consumer: it stayed behind"
        );
        self.warn();
    }

    pub(crate) fn skipped(&self, connection: &str, reason: &str) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.meters.slow_consumer("skipped");
        tracing::trace!(%connection, reason, "a message skipped for a slow consumer");
        self.warn();
    }

    fn warn(&self) {
        if self.warnings.allow().is_some() {
            let stats = self.stats();
            tracing::warn!(
                disconnected = stats.disconnected,
                skipped = stats.skipped,
                "slow consumers: clients that do not read their messages (totals so far)"
            );
        }
    }

    pub(crate) fn stats(&self) -> SlowConsumerStats {
        SlowConsumerStats {
            disconnected: self.disconnected.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}
