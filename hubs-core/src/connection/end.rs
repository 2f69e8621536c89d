//! How a connection ends: the one event every part of it watches, with the reason given
//! by whoever ended it first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a connection is ending, when something other than its read loop ended it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// Hub code called `abort`.
    Aborted,
    /// The transport is gone (a failed write or read, a dropped event stream, a long
    /// poll that never came).
    TransportLost(String),
    /// Its outbound queue stayed full: the slow-consumer policy closed it.
    SlowConsumer,
    /// The user's credential expired (`close_on_authentication_expiration`).
    AuthenticationExpired,
}

#[derive(Debug)]
struct Signal {
    /// Cancelled once the connection is ending: no more writes, invocations cancelled.
    ending: CancellationToken,
    /// Set whenever `ending` is cancelled by [`EndHandle::end`] or
    /// [`finish`](EndHandle::finish), and by the read loop when it sees `ending`
    /// cancelled from outside (the hub's shutdown, hub code cancelling
    /// `connection_closed`). Every send checks it: the token's own check takes a lock,
    /// which a broadcast to 10 000 connections paid 10 000 times.
    ended: AtomicBool,
    reason: OnceLock<EndReason>,
}

/// The "connection is ending" event of one connection, shared by its handle, its read
/// loop and its transport. Cheap to clone.
///
/// Transports get one in [`Connected`](crate::connection::transport::Connected) and call
/// [`transport_lost`](Self::transport_lost) when their side fails; raw connection
/// endpoints make their own with [`EndHandle::new`].
#[derive(Clone, Debug)]
pub struct EndHandle {
    signal: Arc<Signal>,
}

impl Default for EndHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl EndHandle {
    /// A connection that has not ended.
    pub fn new() -> Self {
        Self::with_token(CancellationToken::new())
    }

    /// Ends with `parent` too (the hub's shutdown).
    pub(crate) fn child_of(parent: &CancellationToken) -> Self {
        Self::with_token(parent.child_token())
    }

    fn with_token(ending: CancellationToken) -> Self {
        Self {
            signal: Arc::new(Signal {
                ending,
                ended: AtomicBool::new(false),
                reason: OnceLock::new(),
            }),
        }
    }

    /// The transport failed or went away: the connection ends at once (groups left,
    /// `on_disconnected` run with an error carrying `reason`).
    pub fn transport_lost(&self, reason: impl Into<String>) {
        self.end(EndReason::TransportLost(reason.into()));
    }

    /// Whether the connection is ending or has ended.
    ///
    /// An end from outside the connection (the hub's shutdown) shows here once the
    /// connection's read loop has seen it; [`ended`](Self::ended) completes at once.
    pub fn is_ended(&self) -> bool {
        self.signal.ended.load(Ordering::Acquire)
    }

    /// Completes once the connection is ending.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn ended(&self) {
        self.signal.ending.cancelled().await;
    }

    pub(crate) fn end(&self, reason: EndReason) {
        let _ = self.signal.reason.set(reason);
        self.finish();
    }

    /// Ends without a reason of its own (the read loop has one, or saw the token
    /// cancelled from outside).
    pub(crate) fn finish(&self) {
        self.signal.ended.store(true, Ordering::Release);
        self.signal.ending.cancel();
    }

    pub(crate) fn reason(&self) -> Option<&EndReason> {
        self.signal.reason.get()
    }

    /// The token cancelled when the connection is ending (hub code sees it as
    /// `Context::connection_closed`).
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.signal.ending
    }
}
