//! The sending end of one connection: its outbound queue, as routing and hub code see
//! it, and the slow-consumer policy that judges it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::base::connection_id::ConnectionId;
use crate::base::error::SendError;
use crate::base::meters::ConnectionMeters;
use crate::base::outgoing::OutgoingFilters;
use crate::base::slow_consumer::{
    Delivery, OutboundBudget, SlowConsumer, SlowConsumerCounters, SlowConsumerPolicy,
};
use crate::connection::close::{CloseHandle, CloseReason};
use crate::connection::identity::Identity;
use crate::connection::outbound::{Behind, Frame, OutboundQueue, Outgoing, Paced, outbound_queue};
use crate::connection::results::{ClientResultError, PendingResults, Registration};
use hubs_protocol::{Arguments, Completion, HubMessage, Invocation, Outcome, Protocol};
use tracing::Instrument;

/// The connection is closed; the message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct ConnectionClosed;

/// Why [`ConnectionHandle::try_send`] did not queue a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The connection is persistently behind (see [`OutboundBudget`]); the bytes are
    /// given back.
    #[error("the connection is behind on its outbound queue")]
    Full(Bytes),
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// What a send did for one recipient, before any waiting.
enum Offered {
    /// Queued; the recipient holds this many bytes now.
    Queued(usize),
    /// Left out (the `Skip` rule).
    Skipped,
    /// The recipient is behind and its rule is to wait this long for it.
    Wait(Duration, Bytes),
}

/// The sending end of one connection, as routing sees it.
///
/// Every sender (hub methods of any connection, the hub context, a backplane) goes through
/// the connection's outbound queue, counted in bytes; one task per connection owns the
/// socket. A send queues the message, and when the recipient already holds more than its
/// budget's `pace`, waits for it while its writer makes progress, so a loop of sends runs
/// at the speed of the client. What happens to a recipient that is *persistently* behind
/// (see [`OutboundBudget`]) is its [`SlowConsumerPolicy`]: by default it is closed.
/// Nothing is dropped without being counted and logged.
#[derive(Debug)]
pub struct ConnectionHandle {
    id: ConnectionId,
    user: Option<String>,
    protocol: Protocol,
    queue: OutboundQueue,
    close_handle: CloseHandle,
    policy: Mutex<SlowConsumerPolicy>,
    counters: Arc<SlowConsumerCounters>,
    pub(crate) meters: ConnectionMeters,
    wrote: AtomicBool,
    pub(crate) results: PendingResults,
    pub(crate) outgoing: OutgoingFilters,
    /// Who the connection is now (authentication refresh replaces it).
    pub(crate) identity: Identity,
}

impl ConnectionHandle {
    pub(crate) fn new(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        queue: OutboundQueue,
        close_handle: CloseHandle,
        (policy, counters): (SlowConsumerPolicy, Arc<SlowConsumerCounters>),
        (meters, outgoing): (ConnectionMeters, OutgoingFilters),
    ) -> Self {
        Self {
            id,
            user,
            protocol,
            queue,
            close_handle,
            policy: Mutex::new(policy),
            counters,
            meters,
            wrote: AtomicBool::new(false),
            results: PendingResults::default(),
            outgoing,
            identity: Identity::new(None),
        }
    }

    /// The handle of a connection authenticated as `user`.
    pub(crate) fn with_identity(mut self, user: Option<Arc<crate::base::identity::User>>) -> Self {
        self.identity = Identity::new(user);
        self
    }

    /// A handle not attached to any transport, with its outbound queue: for benchmarks and
    /// tests of routing.
    #[doc(hidden)]
    pub fn standalone(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        budget: OutboundBudget,
    ) -> (Arc<Self>, Outgoing) {
        let (queue, outgoing) = outbound_queue(budget);
        let handle = Self::new(
            id,
            user,
            protocol,
            queue,
            CloseHandle::new(),
            (SlowConsumerPolicy::default(), Arc::default()),
            (
                ConnectionMeters::detached(),
                crate::base::outgoing::OutgoingFilters::none(),
            ),
        );
        (Arc::new(handle), outgoing)
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
        self.close_handle.is_closed()
    }

    /// Ends the connection; the client gets a Close without an error, and is told not to
    /// reconnect.
    pub fn abort(&self) {
        self.close_handle.close(CloseReason::Aborted);
    }

    /// Ends the connection as [`abort`](Self::abort) does, its Close carrying `reason`.
    pub fn close_with(&self, reason: impl Into<String>) {
        self.close_handle.close_with(reason.into());
    }

    pub(crate) fn close_handle(&self) -> &CloseHandle {
        &self.close_handle
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

    /// The connection's outbound queue.
    pub(crate) fn queue(&self) -> &OutboundQueue {
        &self.queue
    }

    /// Queues encoded messages without waiting, unless the connection is persistently
    /// behind.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] (with the bytes) when the connection is persistently behind
    /// (see [`OutboundBudget`]), [`TrySendError::Closed`] when it is closed.
    pub fn try_send(&self, bytes: Bytes) -> Result<(), TrySendError> {
        self.try_send_at(bytes, Instant::now()).map(|_| ())
    }

    /// [`try_send`](Self::try_send) at `now` (one clock reading serves a whole fan-out);
    /// the bytes queued after it.
    pub(crate) fn try_send_at(&self, bytes: Bytes, now: Instant) -> Result<usize, TrySendError> {
        if self.close_handle.is_closed() {
            return Err(TrySendError::Closed);
        }
        let len = bytes.len();
        match self.queue.push_at(self.frame(bytes), now, true) {
            Ok(queued) => {
                self.sent(len);
                Ok(queued)
            }
            Err((_, frame)) => Err(TrySendError::Full(frame.bytes)),
        }
    }

    /// Queues encoded messages for this connection alone (see [`deliver`](Self::deliver)
    /// with [`Delivery::Direct`]).
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed.
    ///
    /// # Cancel safety
    ///
    /// The message is queued (or refused) before the first wait; dropping the future
    /// then only stops waiting.
    pub async fn send(&self, bytes: Bytes) -> Result<(), ConnectionClosed> {
        self.deliver(bytes, Delivery::Direct).await
    }

    /// Queues encoded messages, then, while the connection holds more than its budget's
    /// `pace`, waits for its writer as long as that writer is taking frames. A
    /// connection that is persistently behind gets the policy's rule for `delivery`.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed, including by its
    /// policy.
    ///
    /// # Cancel safety
    ///
    /// The message is queued (or refused) before the first wait, unless the rule is
    /// [`SlowConsumer::Wait`]; dropping the future then only stops waiting.
    pub async fn deliver(&self, bytes: Bytes, delivery: Delivery) -> Result<(), ConnectionClosed> {
        match self.offer_now(bytes, delivery)? {
            Offered::Queued(queued) if self.over_pace(queued) => {
                self.pace().await;
                Ok(())
            }
            Offered::Queued(_) | Offered::Skipped => Ok(()),
            Offered::Wait(timeout, bytes) => self.wait_then_push(bytes, timeout).await,
        }
    }

    /// Queues encoded messages without ever waiting: for a persistently behind
    /// connection, the policy's rule for `delivery` applies with `Wait` taken as
    /// `Disconnect`.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed.
    pub fn offer(&self, bytes: Bytes, delivery: Delivery) -> Result<(), ConnectionClosed> {
        match self.offer_now(bytes, delivery)? {
            Offered::Queued(_) | Offered::Skipped => Ok(()),
            Offered::Wait(..) => {
                self.disconnect_slow_consumer(Behind::OverBudget);
                Err(ConnectionClosed)
            }
        }
    }

    /// Queues `bytes` unless the connection is persistently behind, in which case the
    /// rule for `delivery` decides.
    fn offer_now(&self, bytes: Bytes, delivery: Delivery) -> Result<Offered, ConnectionClosed> {
        let behind = match self.try_send_at(bytes, Instant::now()) {
            Ok(queued) => return Ok(Offered::Queued(queued)),
            Err(TrySendError::Closed) => return Err(ConnectionClosed),
            Err(TrySendError::Full(bytes)) => {
                let behind = self
                    .queue
                    .judge(bytes.len(), Instant::now())
                    .unwrap_or(Behind::OverBudget);
                (behind, bytes)
            }
        };
        let (behind, bytes) = behind;
        match self.slow_consumer_policy().rule(delivery) {
            SlowConsumer::Disconnect => {
                self.disconnect_slow_consumer(behind);
                Err(ConnectionClosed)
            }
            SlowConsumer::Skip => {
                self.counters.skipped(self.id.as_str(), behind.as_str());
                Ok(Offered::Skipped)
            }
            SlowConsumer::Wait(timeout) => Ok(Offered::Wait(timeout, bytes)),
        }
    }

    /// Whether a send to this connection would wait for it (it holds more than its
    /// `pace`), so a fan-out can serve everyone else first.
    pub(crate) fn needs_pacing(&self) -> bool {
        self.over_pace(self.queue.bytes())
    }

    /// Whether `queued` bytes are more than the connection's `pace`.
    pub(crate) fn over_pace(&self, queued: usize) -> bool {
        queued > self.queue.budget().pace
    }

    /// Waits while the connection holds more than its `pace` and its writer is taking
    /// frames.
    pub(crate) async fn pace(&self) {
        let pace = self.queue.budget().pace;
        tokio::select! {
            paced = self.queue.paced(pace) => {
                if paced == Paced::Stalled {
                    tracing::trace!(connection = %self.id, "not waiting for a writer that takes nothing");
                }
            }
            () = self.close_handle.closed() => {}
        }
    }

    /// The `Wait` rule: up to `timeout` for the connection to get back under its soft
    /// budget, then it is closed.
    async fn wait_then_push(
        &self,
        bytes: Bytes,
        timeout: Duration,
    ) -> Result<(), ConnectionClosed> {
        let soft = self.queue.budget().soft_budget;
        let caught_up = tokio::select! {
            caught_up = tokio::time::timeout(timeout, self.queue.under(soft)) => caught_up.is_ok(),
            () = self.close_handle.closed() => return Err(ConnectionClosed),
        };
        if self.close_handle.is_closed() {
            return Err(ConnectionClosed);
        }
        match self.queue.judge(bytes.len(), Instant::now()) {
            Some(behind) if !caught_up || behind == Behind::OverCap => {
                self.disconnect_slow_consumer(behind);
                Err(ConnectionClosed)
            }
            _ => {
                self.push(bytes);
                Ok(())
            }
        }
    }

    /// Closes the connection for being persistently behind, logging why and how much
    /// it held.
    pub(crate) fn disconnect_slow_consumer(&self, behind: Behind) {
        if !self.close_handle.is_closed() {
            let depth = self.queue.depth();
            self.counters.disconnected(
                self.id.as_str(),
                behind.as_str(),
                (depth.bytes, depth.frames, depth.oldest),
            );
            self.close_handle.close(CloseReason::SlowConsumer);
        }
    }

    /// Checks a connection that is over its soft budget while nothing is sent to it:
    /// one persistently behind is closed, unless its policy skips (then the next send
    /// is skipped).
    pub(crate) fn check_behind(&self) {
        if self.close_handle.is_closed() {
            return;
        }
        if let Some(behind) = self.queue.judge(0, Instant::now())
            && self.slow_consumer_policy().fan_out != SlowConsumer::Skip
        {
            self.disconnect_slow_consumer(behind);
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

    /// Queues one of the connection's own replies (a Completion, an error for a refused
    /// invocation): always, since the connection's reading slows down instead. `false`
    /// when the connection is closed or the message cannot be encoded.
    pub(crate) fn reply(&self, message: &HubMessage) -> bool {
        if self.close_handle.is_closed() {
            return false;
        }
        match self.encode(message) {
            Some(bytes) => {
                self.push(bytes);
                true
            }
            None => false,
        }
    }

    /// Queues a stream item of the connection's own stream, then waits while the
    /// connection holds more than its `pace` (a stream runs at the speed of its client,
    /// however slow). `false` when the connection is closed.
    pub(crate) async fn reply_paced(&self, message: &HubMessage) -> bool {
        if !self.reply(message) {
            return false;
        }
        if self.needs_pacing() {
            tokio::select! {
                () = self.queue.under(self.queue.budget().pace) => {}
                () = self.close_handle.closed() => return false,
            }
            // The read loop may be paused on this same queue (over `pause_reading`) and
            // woken by the same drain: let it run before this stream refills the queue,
            // so that it reads what the client sent (a CancelInvocation, the next call)
            // at once rather than when the stream's budget runs out (`pump`).
            tokio::task::yield_now().await;
        }
        !self.close_handle.is_closed()
    }

    /// Queues the connection's last message (its Close) after it has ended.
    pub(crate) fn push_final(&self, message: &HubMessage) {
        if let Some(bytes) = self.encode(message) {
            let len = bytes.len();
            self.queue.push(self.control_frame(bytes));
            self.sent(len);
        }
    }

    /// Queues a Ping (keep-alive traffic is not counted as messages).
    pub(crate) fn send_ping(&self) {
        if self.close_handle.is_closed() {
            return;
        }
        if let Some(bytes) = self.encode(&HubMessage::Ping) {
            self.queue.push(self.control_frame(bytes));
            self.wrote.store(true, Ordering::Relaxed);
        }
    }

    /// Frames waiting in the outbound queue.
    pub(crate) fn queued(&self) -> usize {
        self.queue.depth().frames
    }

    fn push(&self, bytes: Bytes) -> usize {
        let len = bytes.len();
        let queued = self.queue.push(self.frame(bytes));
        self.sent(len);
        queued
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

impl ConnectionHandle {
    /// Invokes `target` on this client and waits for its Completion (a client result).
    ///
    /// The Invocation carries a server-chosen id (`s1`, `s2`, …); the wait ends on the
    /// client's Completion, after `timeout`, or when the connection ends.
    ///
    /// # Errors
    ///
    /// [`ClientResultError`] for a disconnect, a timeout or an encoding failure. An error
    /// Completion from the client is not an error here: it is returned as
    /// [`Outcome::Error`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the pending result; a late Completion is then ignored.
    pub async fn invoke(
        &self,
        target: &str,
        arguments: &dyn Arguments,
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        // A child of the hub method's span: the server calling a client.
        let span = tracing::info_span!(
            "signalr.client_result",
            otel.name = target,
            otel.kind = "client",
            rpc.system = "signalr",
            rpc.method = target,
            signalr.connection.id = %self.id(),
        );
        self.invoke_in(target, arguments, timeout)
            .instrument(span)
            .await
    }

    async fn invoke_in(
        &self,
        target: &str,
        arguments: &dyn Arguments,
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        let arguments = arguments
            .to_values(self.protocol())
            .map_err(|e| ClientResultError::Send(SendError::Encode(e)))?;
        let (id, rx) = self.results.register();
        let registration = Registration {
            results: &self.results,
            id,
        };
        let headers = self
            .outgoing
            .headers(
                crate::base::outgoing::OutgoingKind::ClientResult,
                Some(target),
            )
            .map_err(|dropped| ClientResultError::Send(SendError::Dropped(dropped.0)))?;
        let message = HubMessage::Invocation(Invocation {
            headers,
            invocation_id: Some(registration.id.clone()),
            target: target.to_owned(),
            arguments,
            ..Default::default()
        });
        let disconnected = || ClientResultError::Disconnected(self.id().clone());
        if self.send_message(&message).await.is_err() {
            return Err(disconnected());
        }
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, rx) => match outcome {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(_)) => Err(disconnected()),
                Err(_) => {
                    self.meters.hub().client_result_timeout();
                    Err(ClientResultError::Timeout(timeout))
                }
            },
            () = self.close_handle().closed() => Err(disconnected()),
        };
        drop(registration);
        outcome
    }

    /// Hands a client's Completion to the invocation waiting for it. Returns `false` when
    /// no result with that id is pending.
    pub fn complete(&self, completion: Completion) -> bool {
        match self.results.lock().remove(&completion.invocation_id) {
            Some(waiting) => {
                let _ = waiting.send(completion.outcome);
                true
            }
            None => false,
        }
    }
}
