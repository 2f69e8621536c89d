//! The sending end of one connection: its bounded outbound queue, as routing and hub code
//! see it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::end::{EndHandle, EndReason};
use super::results::PendingResults;
use crate::connection_id::ConnectionId;
use crate::meters::ConnectionMeters;
use crate::protocol::{HubMessage, Protocol};
use crate::slow_consumer::{Delivery, SlowConsumer, SlowConsumerCounters, SlowConsumerPolicy};

/// Queue slots kept for the connection's final Close, so a client closed for not reading
/// still gets told why.
const RESERVED: usize = 1;

/// One write for the transport: whole hub messages, in a text or a binary frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The encoded messages.
    pub bytes: Bytes,
    /// Whether the frame is binary (MessagePack) rather than text (JSON, the handshake of
    /// a JSON connection).
    pub binary: bool,
    /// Whether the frame is one trackable hub message, counted by stateful reconnect
    /// (not a handshake answer, a Ping or a Close).
    pub sequenced: bool,
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
/// the connection's bounded queue; one task per connection owns the socket. What a send
/// does when the queue is full is the connection's [`SlowConsumerPolicy`]: by default a
/// message to many connections disconnects it at once, and a message to it alone waits up
/// to 10 s for room first. A client that stops reading so slows only itself, and nothing
/// is dropped without being counted and logged.
#[derive(Debug)]
pub struct ConnectionHandle {
    id: ConnectionId,
    user: Option<String>,
    protocol: Protocol,
    outbound: mpsc::Sender<Frame>,
    end: EndHandle,
    policy: Mutex<SlowConsumerPolicy>,
    counters: Arc<SlowConsumerCounters>,
    pub(super) meters: ConnectionMeters,
    wrote: AtomicBool,
    pub(super) results: PendingResults,
    pub(super) outgoing: crate::filter::Outgoing,
}

/// A new connection's outbound queue: `capacity` frames for messages, plus the slot
/// kept for its final Close.
pub(crate) fn outbound_queue(capacity: usize) -> (mpsc::Sender<Frame>, mpsc::Receiver<Frame>) {
    mpsc::channel(capacity.max(1) + RESERVED)
}

impl ConnectionHandle {
    pub(crate) fn new(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        outbound: mpsc::Sender<Frame>,
        end: EndHandle,
        (policy, counters): (SlowConsumerPolicy, Arc<SlowConsumerCounters>),
        (meters, outgoing): (ConnectionMeters, crate::filter::Outgoing),
    ) -> Self {
        Self {
            id,
            user,
            protocol,
            outbound,
            end,
            policy: Mutex::new(policy),
            counters,
            meters,
            wrote: AtomicBool::new(false),
            results: PendingResults::default(),
            outgoing,
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
        let (tx, rx) = outbound_queue(capacity);
        let handle = Self::new(
            id,
            user,
            protocol,
            tx,
            EndHandle::new(),
            (SlowConsumerPolicy::default(), Arc::default()),
            (
                ConnectionMeters::detached(),
                crate::filter::Outgoing::none(),
            ),
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

    /// The connection's slow-consumer policy.
    pub fn slow_consumer_policy(&self) -> SlowConsumerPolicy {
        *self
            .policy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Overrides the hub's slow-consumer policy for this connection.
    pub fn set_slow_consumer_policy(&self, policy: SlowConsumerPolicy) {
        *self
            .policy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = policy;
    }

    /// A frame of one trackable message (what every public send queues).
    fn frame(&self, bytes: Bytes) -> Frame {
        Frame {
            bytes,
            binary: self.protocol == Protocol::MessagePack,
            sequenced: true,
        }
    }

    /// A frame of a Ping or a Close, which stateful reconnect does not count.
    fn control_frame(&self, bytes: Bytes) -> Frame {
        Frame {
            sequenced: false,
            ..self.frame(bytes)
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
        // Room beyond the slot kept for the Close, taken atomically.
        match self.outbound.try_reserve_many(RESERVED + 1) {
            Ok(mut permits) => match permits.next() {
                Some(permit) => {
                    let len = bytes.len();
                    permit.send(self.frame(bytes));
                    self.sent(len);
                    Ok(())
                }
                None => Err(TrySendError::Full(bytes)),
            },
            Err(mpsc::error::TrySendError::Full(())) => Err(TrySendError::Full(bytes)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(TrySendError::Closed),
        }
    }

    /// Queues encoded messages for this connection alone: when the queue is full, the
    /// policy's `direct` rule applies (by default, wait up to 10 s for room, then close
    /// the connection).
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the message unsent.
    pub async fn send(&self, bytes: Bytes) -> Result<(), ConnectionClosed> {
        self.deliver(bytes, Delivery::Direct).await
    }

    /// Queues encoded messages; when the queue is full, the policy's rule for `delivery`
    /// applies.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed, including by its
    /// policy.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the message unsent.
    pub async fn deliver(&self, bytes: Bytes, delivery: Delivery) -> Result<(), ConnectionClosed> {
        let bytes = match self.try_send(bytes) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed) => return Err(ConnectionClosed),
            Err(TrySendError::Full(bytes)) => bytes,
        };
        match self.slow_consumer_policy().rule(delivery) {
            SlowConsumer::Disconnect => {
                self.disconnect_slow_consumer();
                Err(ConnectionClosed)
            }
            SlowConsumer::Skip => {
                self.counters.skipped(self.id.as_str());
                Ok(())
            }
            SlowConsumer::Wait(timeout) => self.wait_for_room(bytes, timeout).await,
        }
    }

    /// Queues encoded messages without ever waiting: when the queue is full, the policy's
    /// rule for `delivery` applies with `Wait` taken as `Disconnect` (a backplane's
    /// listener, which serves many connections, must not wait on one).
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed.
    pub fn offer(&self, bytes: Bytes, delivery: Delivery) -> Result<(), ConnectionClosed> {
        match self.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed) => Err(ConnectionClosed),
            Err(TrySendError::Full(_)) => match self.slow_consumer_policy().rule(delivery) {
                SlowConsumer::Skip => {
                    self.counters.skipped(self.id.as_str());
                    Ok(())
                }
                SlowConsumer::Disconnect | SlowConsumer::Wait(_) => {
                    self.disconnect_slow_consumer();
                    Err(ConnectionClosed)
                }
            },
        }
    }

    async fn wait_for_room(
        &self,
        bytes: Bytes,
        timeout: std::time::Duration,
    ) -> Result<(), ConnectionClosed> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Room for the message beyond the slot kept for the Close.
        let room = tokio::select! {
            room = tokio::time::timeout_at(deadline, self.outbound.reserve_many(RESERVED + 1)) => room,
            () = self.end.ended() => return Err(ConnectionClosed),
        };
        match room {
            Ok(Ok(mut permits)) if !self.end.is_ended() => match permits.next() {
                Some(permit) => {
                    let len = bytes.len();
                    permit.send(self.frame(bytes));
                    self.sent(len);
                    Ok(())
                }
                None => Err(ConnectionClosed),
            },
            Ok(_) => Err(ConnectionClosed),
            Err(_) => {
                self.disconnect_slow_consumer();
                Err(ConnectionClosed)
            }
        }
    }

    pub(crate) fn disconnect_slow_consumer(&self) {
        if !self.end.is_ended() {
            self.counters.disconnected(self.id.as_str());
            self.end.end(EndReason::SlowConsumer);
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

    /// Queues the connection's last message (its Close) after it has ended, in the slot
    /// kept for it. Senders that were waiting for room saw the end and let go of what they
    /// held, so this waits for them briefly; a queue that is truly full gets no Close.
    pub(crate) async fn push_final(&self, message: &HubMessage) {
        let Some(bytes) = self.encode(message) else {
            return;
        };
        let room = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            self.outbound.reserve(),
        )
        .await;
        if let Ok(Ok(permit)) = room {
            let len = bytes.len();
            permit.send(self.control_frame(bytes));
            self.sent(len);
        }
    }

    /// Queues a Ping if there is room (keep-alive traffic is not counted as messages).
    pub(crate) fn send_ping(&self) {
        if self.end.is_ended() {
            return;
        }
        if let Some(bytes) = self.encode(&HubMessage::Ping)
            && let Ok(mut permits) = self.outbound.try_reserve_many(RESERVED + 1)
            && let Some(permit) = permits.next()
        {
            permit.send(self.control_frame(bytes));
            self.wrote.store(true, Ordering::Relaxed);
        }
    }

    /// Frames waiting in the outbound queue.
    pub(crate) fn queued(&self) -> usize {
        self.outbound.max_capacity() - self.outbound.capacity()
    }

    fn sent(&self, bytes: usize) {
        self.wrote.store(true, Ordering::Relaxed);
        self.meters.sent.increment(1);
        self.meters.bytes_sent.increment(bytes as u64);
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
