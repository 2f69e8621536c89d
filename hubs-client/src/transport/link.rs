//! An open transport, as the session sees it: a queue of frames to send, the bytes
//! received, and a graceful close.

use std::time::Duration;

use bytes::Bytes;
use hubs_protocol::TransportKind;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

/// Bytes to send, and whether they go in a text frame (WebSockets only).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) bytes: Bytes,
    pub(crate) text: bool,
}

/// An open transport.
pub(crate) struct Link {
    pub(crate) transport: TransportKind,
    pub(crate) out: mpsc::Sender<Outgoing>,
    pub(crate) incoming: mpsc::Receiver<Bytes>,
    /// Fires once the writer has written everything queued before `out` was dropped.
    pub(crate) flushed: oneshot::Receiver<()>,
    /// Closes the transport when the link is dropped.
    pub(crate) guard: DropGuard,
    /// Set when the server closed the transport cleanly (a WebSocket close frame): not a
    /// drop to resume from.
    pub(crate) closed_cleanly: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Why the transport ended, when it knows better than "lost" (set before it stops):
    /// a failed authentication refresh, a second 409 in a row.
    pub(crate) failure: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Link {
    /// Closes the transport gracefully: what is queued is written first (for at most
    /// `patience`), then the transport closes.
    pub(crate) async fn close(self, patience: Duration) {
        let Self {
            out,
            flushed,
            guard,
            ..
        } = self;
        drop(out);
        let _ = tokio::time::timeout(patience, flushed).await;
        drop(guard);
    }
}
