//! What a send does when its recipient's outbound queue is full: the slow-consumer
//! policy of a hub (overridable per connection), and the count of what it cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::meters::HubMeters;
use crate::throttle::Throttle;

/// What happens to a message for a connection whose outbound queue is full.
///
/// A fan-out never waits on one recipient unless its policy says so: with the default
/// policy a full queue disconnects that client at once and everyone else is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Close the connection at once: the client gets a Close carrying an error (it may
    /// reconnect), and the message is not delivered to it.
    Disconnect,
    /// Wait up to this long for room, then disconnect.
    Wait(Duration),
    /// Leave this message out for this recipient and keep the connection (best-effort
    /// hubs: live positions, typing indicators). Counted and logged.
    Skip,
}

/// The slow-consumer policy of a hub: one rule for messages to many connections (the
/// Clients targets but `client` and `caller`), one for messages to a single connection
/// (`client`, `caller`, client results, stream items, completions).
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
    /// For messages to one connection (default [`SlowConsumer::Wait`] of 10 s).
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
    /// Connections closed because their queue stayed full.
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

    pub(crate) fn disconnected(&self, connection: &str) {
        self.disconnected.fetch_add(1, Ordering::Relaxed);
        self.meters.slow_consumer("disconnected");
        tracing::debug!(%connection, "outbound queue full: disconnecting a slow consumer");
        self.warn();
    }

    pub(crate) fn skipped(&self, connection: &str) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.meters.slow_consumer("skipped");
        tracing::trace!(%connection, "outbound queue full: message skipped");
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
