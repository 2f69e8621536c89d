//! The read loop of an established connection. It never waits on one invocation: it
//! reads and decodes what the client sends, hands invocations to the queue, starts them
//! as slots free up, routes Completions and cancellations, and keeps the connection
//! alive, all from one `select!` over named events. A method it starts itself (see
//! [`HubMethod::immediate`](crate::HubMethod::immediate)) runs on it only until its first
//! wait.
//!
//! Uploads are fed without waiting. The loop holds back from reading (the client's bytes
//! wait in its socket and in the decoder) in three cases, each back-pressure on a client
//! that sends faster than it is served:
//!
//! * the connection's outbound queue holds more than the budget's `pause_reading` (its own
//!   replies, or anything else sent to it, wait for the client to read them): it reads
//!   again under half of it, as ASP.NET Core's pipes pause and resume;
//! * [`MAX_QUEUED`](crate::dispatch::invocation::MAX_QUEUED) invocations wait for a slot: it reads
//!   again once one starts;
//! * a method is draining an upload that holds more than `stream_buffer_capacity` items,
//!   for at most [`UPLOAD_STALL`] without progress: an upload its method does not drain
//!   never holds up the messages behind it.
//!
//! None of these counts as the client's silence for the client timeout. While the
//! outbound queue is over its soft budget, the loop also checks on a timer whether the
//! client is persistently behind, so a client nobody sends to any more is still judged.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::base::stream::{Pushed, UploadSender};
use crate::connection::close::CloseReason;
use crate::connection::transport::{Capabilities, Incoming};
use crate::dispatch::invocation::Invocations;
use crate::dispatch::invocation::Received;
use crate::dispatch::keep_alive::Beat;
use crate::dispatch::keep_alive::KeepAlive;
use crate::dispatch::task::Task;
use crate::hub::definition::Hub;
use hubs_protocol::wire;
use hubs_protocol::{
    DecodeError, HubMessage, MessageDecoder, Outcome, StreamInvocation, StreamItem,
};

/// How long the reader waits for a method to take an item from a full upload before it
/// reads on.
pub(crate) const UPLOAD_STALL: Duration = Duration::from_secs(1);

/// How many chunks already received [`Reader::last_words`] looks through at most.
const LAST_WORDS: usize = 16;

/// What woke the loop.
enum Event {
    /// The connection is closing (hub code, the transport, a slow client, shutdown).
    Closed,
    /// A slot is free for the next queued invocation.
    Slot(OwnedSemaphorePermit),
    /// Time for keep-alive.
    Beat,
    /// The upload the loop waited for drained, or did not in time.
    Upload { drained: bool },
    /// The transport delivered bytes, closed cleanly (`None`) or failed.
    Chunk(Option<io::Result<Bytes>>),
    /// The outbound queue drained under half of `pause_reading`: read on.
    Resume,
    /// The outbound queue is over its soft budget: time to check whether the client is
    /// persistently behind.
    Behind,
}

/// Waiting for a congested upload to drain: `true` once it did, `false` once
/// [`UPLOAD_STALL`] passed.
type UploadWait = Pin<Box<dyn Future<Output = bool> + Send>>;

pub(crate) struct Reader<'a, H: Hub> {
    cx: &'a Task<H>,
    capabilities: Capabilities,
    decoder: MessageDecoder,
    invocations: Invocations,
    keep_alive: KeepAlive,
    /// The upload the loop waits for, and the wait: `true` once it drained, `false`
    /// after [`UPLOAD_STALL`] (boxed: it is rare, and the loop's state stays small).
    congestion: Option<(UploadSender, UploadWait)>,
    /// The outbound queue went over `pause_reading`: the loop reads no further until it
    /// drains under half of it.
    paused: bool,
}

impl<'a, H: Hub> Reader<'a, H> {
    pub(crate) fn new(
        cx: &'a Task<H>,
        capabilities: Capabilities,
        decoder: MessageDecoder,
    ) -> Self {
        let options = &cx.shared().options;
        Self {
            cx,
            capabilities,
            decoder,
            invocations: Invocations::new(options.max_parallel_invocations),
            keep_alive: KeepAlive::new(options, Instant::now()),
            congestion: None,
            paused: false,
        }
    }

    pub(crate) async fn run(&mut self, incoming: &mut Incoming) -> CloseReason {
        // Messages that arrived with the handshake.
        if let Some(why) = self.drain() {
            return why;
        }
        let close_handle = self.cx.handle().close_handle().clone();
        // One waiter for the whole connection (registering one per message is costly).
        let closed = close_handle.closed();
        tokio::pin!(closed);
        let resume_at = self.cx.shared().options.outbound_budget.pause_reading / 2;
        let mut heartbeat = tokio::time::interval(self.keep_alive.period());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.congestion.is_none() {
                self.congestion = self.cx.streams().congested().map(|upload| {
                    let waiting = upload.clone();
                    let wait: UploadWait = Box::pin(async move {
                        tokio::select! {
                            () = waiting.drained() => true,
                            () = tokio::time::sleep(UPLOAD_STALL) => false,
                        }
                    });
                    (upload, wait)
                });
            }
            self.paused = self.paused || self.over_pause();
            let event = {
                let reading = self.congestion.is_none();
                let congestion = &mut self.congestion;
                let upload = async move {
                    match congestion {
                        Some((_, wait)) => wait.as_mut().await,
                        None => std::future::pending().await,
                    }
                };
                let queue = self.cx.handle().queue();
                let take_chunks = reading && !self.paused && !self.invocations.full();
                tokio::select! {
                    biased;
                    () = &mut closed => Event::Closed,
                    slot = self.invocations.slot(), if self.invocations.waiting() => Event::Slot(slot),
                    _ = heartbeat.tick(), if self.capabilities.keep_alive => Event::Beat,
                    () = queue.under(resume_at), if self.paused => Event::Resume,
                    () = queue.over_budget() => Event::Behind,
                    drained = upload, if !reading => Event::Upload { drained },
                    chunk = incoming.next(), if take_chunks => Event::Chunk(chunk),
                }
            };
            let event = match event {
                // Over the soft budget: judged on a timer until it is back under.
                Event::Behind => self.watch_behind(&mut closed).await,
                event => event,
            };
            if let Event::Closed = event
                && let Some(closed) = self.last_words(incoming)
            {
                return closed;
            }
            if let Some(why) = self.handle(event) {
                return why;
            }
        }
    }

    /// The connection closed from outside (its transport went, say): a Close the client
    /// sent just before, already received, still counts as its clean close. Looks only at
    /// what is there now, and at nothing but a Close.
    fn last_words(&mut self, incoming: &mut Incoming) -> Option<CloseReason> {
        for _ in 0..LAST_WORDS {
            match incoming.next().now_or_never() {
                Some(Some(Ok(bytes))) => self.decoder.push(&bytes),
                _ => break,
            }
        }
        loop {
            match self.decoder.next_message() {
                Ok(Some(HubMessage::Close(close))) => {
                    return Some(CloseReason::ClientClosed(close.error));
                }
                Ok(Some(_)) => {}
                Err(error) if !error.is_fatal() => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    fn handle(&mut self, event: Event) -> Option<CloseReason> {
        match event {
            Event::Closed => {
                let close_handle = self.cx.handle().close_handle();
                // Ended from outside perhaps (shutdown): sends stop here too.
                close_handle.mark_closed();
                let shutting_down = self.cx.shared().shutdown.is_cancelled();
                Some(CloseReason::signalled(close_handle.reason(), shutting_down))
            }
            Event::Slot(slot) => {
                self.invocations.start_next(self.cx, slot);
                // Room in the queue: what the decoder holds goes on.
                self.drain()
            }
            Event::Resume => {
                self.paused = false;
                self.drain()
            }
            Event::Behind => None,
            Event::Beat => self.beat(),
            Event::Upload { drained } => {
                if let Some((upload, _)) = self.congestion.take()
                    && !drained
                {
                    tracing::debug!("an upload is not drained by its method; reading on");
                    upload.mark_stalled();
                }
                None
            }
            Event::Chunk(None) => Some(CloseReason::TransportClosed),
            Event::Chunk(Some(Err(error))) if error.kind() == io::ErrorKind::InvalidData => {
                // The transport's own framing was broken (a WebSocket frame too large or
                // not UTF-8): a protocol error, told to the client.
                let detailed = self.cx.shared().options.detailed_errors;
                let detail = error.to_string();
                Some(CloseReason::Error {
                    text: wire::closed_with_error(
                        detailed.then_some(("InvalidDataException", detail.as_str())),
                    ),
                    allow_reconnect: true,
                })
            }
            Event::Chunk(Some(Err(error))) => Some(CloseReason::TransportLost(error.to_string())),
            Event::Chunk(Some(Ok(bytes))) => {
                self.keep_alive.received(Instant::now());
                self.cx
                    .handle()
                    .meters
                    .bytes_received
                    .increment(bytes.len() as u64);
                self.decoder.push(&bytes);
                self.drain()
            }
        }
    }

    /// Whether the outbound queue holds more than `pause_reading`.
    fn over_pause(&self) -> bool {
        self.cx.handle().queue().bytes() > self.cx.shared().options.outbound_budget.pause_reading
    }

    /// Whether the loop holds back from handling more of what the client sent.
    fn holding(&self) -> bool {
        self.paused || self.invocations.full()
    }

    /// While the outbound queue is over its soft budget, judges it every check period
    /// (and keeps the rest of the loop waiting: the client is behind, so it is not read
    /// from meanwhile either). Returns once the queue is back under its soft budget
    /// ([`Event::Behind`], nothing to do) or the connection closes ([`Event::Closed`]).
    async fn watch_behind(
        &mut self,
        closed: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Event {
        let handle = self.cx.handle();
        let budget = self.cx.shared().options.outbound_budget;
        let mut checks = tokio::time::interval(budget.check_period());
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.paused = true;
        loop {
            tokio::select! {
                biased;
                () = closed.as_mut() => return Event::Closed,
                () = handle.queue().under(budget.soft_budget) => return Event::Behind,
                _ = checks.tick() => {
                    handle.check_behind();
                    // The client's silence meanwhile is the server's doing.
                    self.keep_alive.received(Instant::now());
                }
            }
        }
    }

    fn beat(&mut self) -> Option<CloseReason> {
        let handle = self.cx.handle();
        handle.meters.queue_depth.record(handle.queued() as f64);
        let reading = self.congestion.is_none() && !self.holding();
        match self
            .keep_alive
            .on_beat(Instant::now(), handle.take_wrote(), reading)
        {
            Beat::Quiet => None,
            Beat::Ping => {
                // A full queue means data is on its way, which keeps the client alive too.
                handle.send_ping();
                // The Ping is not news at the next beat.
                handle.take_wrote();
                None
            }
            Beat::ClientTimedOut => {
                tracing::debug!("client timeout");
                let detailed = self.cx.shared().options.detailed_errors;
                Some(CloseReason::Error {
                    text: wire::closed_with_error(
                        detailed.then_some(("TimeoutException", wire::CLIENT_TIMEOUT)),
                    ),
                    allow_reconnect: true,
                })
            }
        }
    }

    /// Handles every complete message; `Some` closes the connection.
    fn drain(&mut self) -> Option<CloseReason> {
        loop {
            if self.holding() || self.over_pause() {
                self.paused = self.paused || self.over_pause();
                return None;
            }
            match self.decoder.next_message() {
                Ok(Some(message)) => {
                    if let Some(why) = self.dispatch(message) {
                        return Some(why);
                    }
                }
                Ok(None) => return None,
                Err(DecodeError::UnknownMessageType(kind)) => {
                    tracing::debug!(kind, "ignoring a message of unknown type");
                }
                Err(error) => {
                    tracing::debug!(%error, "protocol error");
                    let detail = match &error {
                        DecodeError::TooLarge { max } => wire::message_too_large(*max),
                        other => other.to_string(),
                    };
                    let detailed = self.cx.shared().options.detailed_errors;
                    return Some(CloseReason::Error {
                        text: wire::closed_with_error(
                            detailed.then_some(("InvalidDataException", detail.as_str())),
                        ),
                        allow_reconnect: true,
                    });
                }
            }
        }
    }

    /// One message from the client. Never waits.
    fn dispatch(&mut self, message: HubMessage) -> Option<CloseReason> {
        let streams = self.cx.streams();
        if !matches!(message, HubMessage::Ping) {
            self.cx.handle().meters.received.increment(1);
        }
        match message {
            HubMessage::Invocation(invocation) => self.invocations.accept(
                self.cx,
                Received {
                    invocation_id: invocation.invocation_id,
                    target: invocation.target,
                    arguments: invocation.arguments,
                    stream_ids: invocation.stream_ids,
                    streaming: false,
                    headers: invocation.headers,
                },
            ),
            HubMessage::StreamInvocation(StreamInvocation {
                headers,
                invocation_id,
                target,
                arguments,
                stream_ids,
            }) => self.invocations.accept(
                self.cx,
                Received {
                    invocation_id: Some(invocation_id),
                    target,
                    arguments,
                    stream_ids,
                    streaming: true,
                    headers,
                },
            ),
            HubMessage::StreamItem(StreamItem {
                invocation_id,
                item,
                ..
            }) => match streams.push(&invocation_id, item) {
                None | Some(Pushed::Ignored) => {
                    tracing::debug!(id = %invocation_id, "item for an unknown or finished upload; ignored");
                }
                Some(Pushed::Overflowed) => {
                    tracing::debug!(id = %invocation_id, "upload over the connection's buffer; failed");
                }
                Some(Pushed::Buffered) => {}
            },
            HubMessage::Completion(completion) => {
                // Uploads first, then client results, as the official server does.
                let error = match &completion.outcome {
                    Outcome::Error(error) => Some(error.clone()),
                    _ => None,
                };
                if !streams.complete_upload(&completion.invocation_id, error) {
                    let id = completion.invocation_id.clone();
                    if !self.cx.handle().complete(completion) {
                        tracing::debug!(%id, "completion for an unknown invocation; ignored");
                    }
                }
            }
            HubMessage::CancelInvocation(cancel) => {
                if !streams.cancel_download(&cancel.invocation_id) {
                    tracing::debug!(id = %cancel.invocation_id, "cancel for an unknown stream; ignored");
                }
            }
            HubMessage::Ping => self.keep_alive.client_pinged(),
            HubMessage::Close(close) => return Some(CloseReason::ClientClosed(close.error)),
            HubMessage::Ack(_) | HubMessage::Sequence(_) => {
                tracing::debug!("stateful reconnect message on a connection without it; ignored");
            }
            _ => tracing::debug!("a message type this server does not handle; ignored"),
        }
        None
    }
}
