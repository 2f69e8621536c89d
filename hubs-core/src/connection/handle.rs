//! The sending end of one connection: its bounded outbound queue, as routing and hub code
//! see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::end::{EndHandle, EndReason};
use super::results::PendingResults;
use crate::connection_id::ConnectionId;
use crate::protocol::{HubMessage, Protocol};

/// One write for the transport: whole hub messages, in a text or a binary frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The encoded messages.
    pub bytes: Bytes,
    /// Whether the frame is binary (MessagePack) rather than text (JSON, the handshake of
    /// a JSON connection).
    pub binary: bool,
}

/// The connection is closed; the message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct ConnectionClosed;

/// Why [`ConnectionHandle::try_send`] did not queue a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The queue is full; the bytes are given back.
    #[error("the connection's outbound queue is full")]
    Full(Bytes),
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// The sending end of one connection, as routing sees it.
///
/// Every sender (hub methods of any connection, the hub context, a backplane) goes through
/// the connection's bounded queue; one task per connection owns the socket. When the
/// queue is full, [`send`](Self::send) waits up to the send timeout for room, and if there
/// is still none the connection is closed: a client that stops reading slows only itself,
/// and a message that was queued is never silently dropped.
#[derive(Debug)]
pub struct ConnectionHandle {
    id: ConnectionId,
    user: Option<String>,
    protocol: Protocol,
    outbound: mpsc::Sender<Frame>,
    end: EndHandle,
    send_timeout: Duration,
    wrote: AtomicBool,
    pub(super) results: PendingResults,
}

impl ConnectionHandle {
    pub(crate) fn new(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        outbound: mpsc::Sender<Frame>,
        end: EndHandle,
        send_timeout: Duration,
    ) -> Self {
        Self {
            id,
            user,
            protocol,
            outbound,
            end,
            send_timeout,
            wrote: AtomicBool::new(false),
            results: PendingResults::default(),
        }
    }

    /// A handle not attached to any transport, with its outbound queue: for benchmarks and
    /// tests of routing.
    #[doc(hidden)]
    pub fn standalone(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        capacity: usize,
    ) -> (Arc<Self>, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = Self::new(
            id,
            user,
            protocol,
            tx,
            EndHandle::new(),
            Duration::from_secs(10),
        );
        (Arc::new(handle), rx)
    }

    /// The connection's id.
    pub fn id(&self) -> &ConnectionId {
        &self.id
    }

    /// The user the connection belongs to, if the server identifies users.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The connection's hub protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.end.is_ended()
    }

    /// Ends the connection; the client gets a Close without an error, and is told not to
    /// reconnect.
    pub fn abort(&self) {
        self.end.end(EndReason::Aborted);
    }

    pub(crate) fn end_handle(&self) -> &EndHandle {
        &self.end
    }

    fn frame(&self, bytes: Bytes) -> Frame {
        Frame {
            bytes,
            binary: self.protocol == Protocol::MessagePack,
        }
    }

    /// Queues encoded messages without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] (with the bytes) when the queue is full,
    /// [`TrySendError::Closed`] when the connection is closed.
    pub fn try_send(&self, bytes: Bytes) -> Result<(), TrySendError> {
        if self.end.is_ended() {
            return Err(TrySendError::Closed);
        }
        match self.outbound.try_send(self.frame(bytes)) {
            Ok(()) => {
                self.wrote.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(frame)) => Err(TrySendError::Full(frame.bytes)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TrySendError::Closed),
        }
    }

    /// Queues encoded messages, waiting for room up to the send timeout; a connection
    /// that makes no room in time is closed.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the message unsent.
    pub async fn send(&self, bytes: Bytes) -> Result<(), ConnectionClosed> {
        let bytes = match self.try_send(bytes) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed) => return Err(ConnectionClosed),
            Err(TrySendError::Full(bytes)) => bytes,
        };
        let frame = self.frame(bytes);
        tokio::select! {
            sent = tokio::time::timeout(self.send_timeout, self.outbound.send(frame)) => match sent {
                Ok(Ok(())) => {
                    self.wrote.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Ok(Err(_)) => Err(ConnectionClosed),
                Err(_) => {
                    tracing::debug!(connection = %self.id, "send timed out; closing the connection");
                    self.end.end(EndReason::SendTimedOut);
                    Err(ConnectionClosed)
                }
            },
            () = self.end.ended() => Err(ConnectionClosed),
        }
    }

    /// Encodes `message` with the connection's protocol and queues it (see
    /// [`send`](Self::send)).
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is closed. An encoding error is logged and
    /// reported the same way, since nothing was sent.
    pub async fn send_message(&self, message: &HubMessage) -> Result<(), ConnectionClosed> {
        match self.encode(message) {
            Some(bytes) => self.send(bytes).await,
            None => Err(ConnectionClosed),
        }
    }

    /// Queues `message` without waiting; `false` when it was not queued.
    pub(crate) fn try_send_message(&self, message: &HubMessage) -> bool {
        self.encode(message)
            .is_some_and(|bytes| self.try_send(bytes).is_ok())
    }

    /// Queues the connection's last message (its Close) after it has ended, if there is
    /// room.
    pub(crate) fn push_final(&self, message: &HubMessage) {
        if let Some(bytes) = self.encode(message) {
            let _ = self.outbound.try_send(self.frame(bytes));
        }
    }

    fn encode(&self, message: &HubMessage) -> Option<Bytes> {
        let mut out = Vec::new();
        match self.protocol.encode(message, &mut out) {
            Ok(()) => Some(out.into()),
            Err(error) => {
                tracing::error!(connection = %self.id, %error, "cannot encode a message");
                None
            }
        }
    }

    /// Whether anything was queued since the last call.
    pub(crate) fn take_wrote(&self) -> bool {
        self.wrote.swap(false, Ordering::Relaxed)
    }
}
