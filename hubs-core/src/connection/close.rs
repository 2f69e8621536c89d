//! How a connection closes: the one event every part of it watches, with the reason given
//! by whoever closed it first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a connection closed: given by whoever closed it first (hub code, the transport, the
/// slow-consumer policy, an expired credential), or found by its read loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client closed the transport cleanly without a Close message.
    TransportClosed,
    /// The transport failed or went away (a failed write or read, a dropped event stream,
    /// a long poll that never came).
    TransportLost(String),
    /// The client sent Close (with its error, if any).
    ClientClosed(Option<String>),
    /// Hub code called `abort`.
    Aborted,
    /// It stayed behind on its outbound queue: the slow-consumer policy closed it.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// A protocol error, a timeout, a failed hook or an expired credential: Close with this
    /// error.
    Error { text: String, allow_reconnect: bool },
}

#[derive(Debug)]
struct Signal {
    /// Cancelled once the connection is closing: no more writes, invocations cancelled.
    closing: CancellationToken,
    /// Set whenever `closing` is cancelled by [`CloseHandle::close`] or
    /// [`mark_closed`](CloseHandle::mark_closed), and by the read loop when it sees
    /// `closing` cancelled from outside (the hub's shutdown, hub code cancelling
    /// `connection_closed`). Every send checks it: the token's own check takes a lock,
    /// which a broadcast to 10 000 connections paid 10 000 times.
    closed: AtomicBool,
    reason: OnceLock<CloseReason>,
}

/// The "connection is closing" event of one connection, shared by its handle, its read
/// loop and its transport. Cheap to clone.
///
/// Transports get one in [`Connected`](crate::connection::transport::Connected) and call
/// [`transport_lost`](Self::transport_lost) when their side fails; raw connection
/// endpoints make their own with [`CloseHandle::new`].
#[derive(Clone, Debug)]
pub struct CloseHandle {
    signal: Arc<Signal>,
}

impl Default for CloseHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl CloseHandle {
    /// A connection that has not ended.
    pub fn new() -> Self {
        Self::with_token(CancellationToken::new())
    }

    /// Ends with `parent` too (the hub's shutdown).
    pub(crate) fn child_of(parent: &CancellationToken) -> Self {
        Self::with_token(parent.child_token())
    }

    fn with_token(closing: CancellationToken) -> Self {
        Self {
            signal: Arc::new(Signal {
                closing,
                closed: AtomicBool::new(false),
                reason: OnceLock::new(),
            }),
        }
    }

    /// The transport failed or went away: the connection ends at once (groups left,
    /// `on_disconnected` run with an error carrying `reason`).
    pub fn transport_lost(&self, reason: impl Into<String>) {
        self.close(CloseReason::TransportLost(reason.into()));
    }

    /// Whether the connection is ending or has ended.
    ///
    /// An end from outside the connection (the hub's shutdown) shows here once the
    /// connection's read loop has seen it; [`closed`](Self::closed) completes at once.
    pub fn is_closed(&self) -> bool {
        self.signal.closed.load(Ordering::Acquire)
    }

    /// Completes once the connection is ending.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) {
        self.signal.closing.cancelled().await;
    }

    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.signal.reason.set(reason);
        self.mark_closed();
    }

    /// Closes with `text` as the Close's error, telling the client not to reconnect.
    pub(crate) fn close_with(&self, text: String) {
        self.close(CloseReason::Error {
            text,
            allow_reconnect: false,
        });
    }

    /// Ends without a reason of its own (the read loop has one, or saw the token
    /// cancelled from outside).
    pub(crate) fn mark_closed(&self) {
        self.signal.closed.store(true, Ordering::Release);
        self.signal.closing.cancel();
    }

    pub(crate) fn reason(&self) -> Option<&CloseReason> {
        self.signal.reason.get()
    }

    /// The token cancelled when the connection is ending (hub code sees it as
    /// `Context::connection_closed`).
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.signal.closing
    }
}
