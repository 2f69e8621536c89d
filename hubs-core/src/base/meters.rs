//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade: what an application's
//! recorder (a Prometheus exporter, OpenTelemetry) sees of each hub. Without a recorder
//! every call is a no-op.
//!
//! The names are ASP.NET Core's SignalR meters where they exist
//! (`signalr.server.active_connections`, `signalr.server.connection.duration`), in the
//! Prometheus form, with units in the name:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `signalr_server_active_connections` | gauge | `hub` |
//! | `signalr_server_connection_duration_seconds` | histogram | `hub`, `reason` |
//! | `signalr_server_messages_received_total` | counter | `hub`, `protocol` |
//! | `signalr_server_messages_sent_total` | counter | `hub`, `protocol` |
//! | `signalr_server_bytes_received_total` | counter | `hub`, `protocol` |
//! | `signalr_server_bytes_sent_total` | counter | `hub`, `protocol` |
//! | `signalr_server_invocation_duration_seconds` | histogram | `hub`, `method`, `outcome` |
//! | `signalr_server_outbound_queue_depth` | histogram | `hub` |
//! | `signalr_server_slow_consumer_total` | counter | `hub`, `action` (`disconnected`, `skipped`) |
//! | `signalr_server_client_result_timeouts_total` | counter | `hub` |
//! | `signalr_server_negotiations_evicted_total` | counter | (none: server-wide) |
//!
//! Install the recorder before building the server: handles are registered when a
//! connection starts (and per method at its first invocation), so the hot path is an
//! atomic add.
//!
//! Messages are hub messages (not the handshake, not Pings). `hub` is the path the hub is
//! mounted at (or [`HubOptions::name`](crate::HubOptions::name)); `method` is the wire
//! name as declared; `outcome` is `ok` or `error`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, SharedString};

use hubs_protocol::Protocol;

/// Metric names, in one place.
pub mod names {
    /// Connections running now.
    pub const ACTIVE_CONNECTIONS: &str = "signalr_server_active_connections";
    /// How long connections lasted, by close reason.
    pub const CONNECTION_DURATION: &str = "signalr_server_connection_duration_seconds";
    /// Hub messages received from clients.
    pub const MESSAGES_RECEIVED: &str = "signalr_server_messages_received_total";
    /// Hub messages sent to clients.
    pub const MESSAGES_SENT: &str = "signalr_server_messages_sent_total";
    /// Bytes received from clients (after the handshake).
    pub const BYTES_RECEIVED: &str = "signalr_server_bytes_received_total";
    /// Bytes queued for clients.
    pub const BYTES_SENT: &str = "signalr_server_bytes_sent_total";
    /// How long invocations took, by method and outcome.
    pub const INVOCATION_DURATION: &str = "signalr_server_invocation_duration_seconds";
    /// Frames waiting in a connection's outbound queue, sampled every second.
    pub const OUTBOUND_QUEUE_DEPTH: &str = "signalr_server_outbound_queue_depth";
    /// What the slow-consumer policy did.
    pub const SLOW_CONSUMER: &str = "signalr_server_slow_consumer_total";
    /// Client results that timed out.
    pub const CLIENT_RESULT_TIMEOUTS: &str = "signalr_server_client_result_timeouts_total";
    /// Unused negotiations evicted to make room for new ones (the server's
    /// `max_pending_negotiations` was reached: a negotiate flood, or clients that never
    /// connect).
    pub const NEGOTIATIONS_EVICTED: &str = "signalr_server_negotiations_evicted_total";
}

/// Describes every metric to the installed recorder (units and help texts). Call it once
/// after installing a recorder; optional.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(names::ACTIVE_CONNECTIONS, "Connections running now.");
    describe_histogram!(
        names::CONNECTION_DURATION,
        Unit::Seconds,
        "How long connections lasted, by close reason."
    );
    describe_counter!(
        names::MESSAGES_RECEIVED,
        "Hub messages received from clients."
    );
    describe_counter!(names::MESSAGES_SENT, "Hub messages sent to clients.");
    describe_counter!(
        names::BYTES_RECEIVED,
        Unit::Bytes,
        "Bytes received from clients."
    );
    describe_counter!(names::BYTES_SENT, Unit::Bytes, "Bytes queued for clients.");
    describe_histogram!(
        names::INVOCATION_DURATION,
        Unit::Seconds,
        "How long hub method invocations took, by method and outcome."
    );
    describe_histogram!(
        names::OUTBOUND_QUEUE_DEPTH,
        "Frames waiting in a connection's outbound queue, sampled every second."
    );
    describe_counter!(
        names::SLOW_CONSUMER,
        "Connections closed and messages skipped by the slow-consumer policy."
    );
    describe_counter!(
        names::CLIENT_RESULT_TIMEOUTS,
        "Client results that timed out."
    );
    describe_counter!(
        names::NEGOTIATIONS_EVICTED,
        "Unused negotiations evicted to make room for new ones."
    );
}

/// One hub's label and what it records outside connections.
#[derive(Debug)]
pub(crate) struct HubMeters {
    hub: SharedString,
    /// Per method, the invocation-duration histograms for `ok` and `error`, registered
    /// at first use (so the hot path is a lookup-free record).
    invocations: Vec<OnceLock<[Histogram; 2]>>,
}

impl HubMeters {
    pub(crate) fn new(hub: &str) -> Arc<Self> {
        Self::with_methods(hub, 0)
    }

    pub(crate) fn with_methods(hub: &str, methods: usize) -> Arc<Self> {
        Arc::new(Self {
            hub: SharedString::from(hub.to_owned()),
            invocations: (0..methods).map(|_| OnceLock::new()).collect(),
        })
    }

    fn hub(&self) -> SharedString {
        self.hub.clone()
    }

    /// A connection started: its meters, which record its end when dropped.
    pub(crate) fn connection(self: &Arc<Self>, protocol: Protocol) -> ConnectionMeters {
        let hub = self.hub();
        let protocol = protocol.name();
        let active = metrics::gauge!(names::ACTIVE_CONNECTIONS, "hub" => hub.clone());
        active.increment(1.0);
        ConnectionMeters {
            hub: self.clone(),
            started: Instant::now(),
            active,
            received: metrics::counter!(names::MESSAGES_RECEIVED, "hub" => hub.clone(), "protocol" => protocol),
            sent: metrics::counter!(names::MESSAGES_SENT, "hub" => hub.clone(), "protocol" => protocol),
            bytes_received: metrics::counter!(names::BYTES_RECEIVED, "hub" => hub.clone(), "protocol" => protocol),
            bytes_sent: metrics::counter!(names::BYTES_SENT, "hub" => hub.clone(), "protocol" => protocol),
            queue_depth: metrics::histogram!(names::OUTBOUND_QUEUE_DEPTH, "hub" => hub),
        }
    }

    /// An invocation of method number `index` (named `method`) completed after `seconds`.
    pub(crate) fn invocation(&self, index: usize, method: &'static str, ok: bool, seconds: f64) {
        if self.hub.is_empty() {
            return;
        }
        let Some(slot) = self.invocations.get(index) else {
            return;
        };
        let histograms = slot.get_or_init(|| {
            ["ok", "error"].map(|outcome| {
                metrics::histogram!(
                    names::INVOCATION_DURATION,
                    "hub" => self.hub(),
                    "method" => method,
                    "outcome" => outcome,
                )
            })
        });
        histograms[usize::from(!ok)].record(seconds);
    }

    pub(crate) fn slow_consumer(&self, action: &'static str) {
        if self.hub.is_empty() {
            return;
        }
        metrics::counter!(names::SLOW_CONSUMER, "hub" => self.hub(), "action" => action)
            .increment(1);
    }

    pub(crate) fn client_result_timeout(&self) {
        if self.hub.is_empty() {
            return;
        }
        metrics::counter!(names::CLIENT_RESULT_TIMEOUTS, "hub" => self.hub()).increment(1);
    }
}

/// One connection's meters.
#[derive(Debug)]
pub(crate) struct ConnectionMeters {
    hub: Arc<HubMeters>,
    started: Instant,
    active: Gauge,
    pub(crate) received: Counter,
    pub(crate) sent: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) queue_depth: Histogram,
}

impl ConnectionMeters {
    /// Meters that record nothing (a handle without a hub).
    pub(crate) fn detached() -> Self {
        Self {
            hub: HubMeters::new(""),
            started: Instant::now(),
            active: Gauge::noop(),
            received: Counter::noop(),
            sent: Counter::noop(),
            bytes_received: Counter::noop(),
            bytes_sent: Counter::noop(),
            queue_depth: Histogram::noop(),
        }
    }

    pub(crate) fn hub(&self) -> &Arc<HubMeters> {
        &self.hub
    }

    /// The connection closed for `reason`: one less active, and its duration.
    pub(crate) fn closed(&self, reason: &'static str) {
        if self.hub.hub.is_empty() {
            return;
        }
        self.active.decrement(1.0);
        metrics::histogram!(
            names::CONNECTION_DURATION,
            "hub" => self.hub.hub(),
            "reason" => reason,
        )
        .record(self.started.elapsed().as_secs_f64());
    }

    /// How long the connection has run.
    pub(crate) fn age(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}
