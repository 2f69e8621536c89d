//! How an invocation ends: the Completion of a call that did not stream, a stream's items
//! and final Completion, and what is recorded of it (its span's outcome, its duration).

use futures_util::{FutureExt, StreamExt};
use std::panic::AssertUnwindSafe;
use tokio_util::sync::CancellationToken;

use crate::base::error::DispatchError;
use crate::base::stream::Reply;
use crate::base::stream::ReplyStream;
use crate::connection::handle::ConnectionHandle;
use crate::dispatch::task::Task;
use crate::hub::definition::Hub;
use crate::runtime::HubRuntime;
use hubs_protocol::{Completion, HubMessage, Outcome, StreamItem, Value};

/// How a call that did not stream completed: its Completion (none for a call that asked for
/// no answer) and what [`record_completion`] records.
pub(crate) struct Completed {
    pub(crate) message: Option<HubMessage>,
    method: (usize, &'static str),
    started: std::time::Instant,
    ok: bool,
    error: Option<&'static str>,
}

impl Completed {
    pub(crate) fn new<H: Hub>(
        cx: &Task<H>,
        method: usize,
        invocation_id: Option<String>,
        target: &str,
        outcome: Result<Reply, DispatchError>,
        started: std::time::Instant,
    ) -> Self {
        if let Err(error) = &outcome {
            tracing::debug!(?error, "invocation failed");
        }
        let error = error_type(&outcome);
        let (message, ok) = match invocation_id {
            None => (None, outcome.is_ok()),
            Some(id) => {
                let completion = completion_for(cx, id, outcome, target);
                let ok = !matches!(completion.outcome, Outcome::Error(_));
                (Some(HubMessage::Completion(completion)), ok)
            }
        };
        Self {
            message,
            method: (method, H::methods()[method].name),
            started,
            ok,
            error,
        }
    }

    /// Queues the Completion (a reply of the connection's own: never refused; the
    /// connection's reading slows down instead).
    pub(crate) fn send<H: Hub>(&self, cx: &Task<H>) {
        if let Some(message) = &self.message {
            cx.handle().reply(message);
        }
    }

    /// Records the invocation's end.
    pub(crate) fn record<H: Hub>(&self, runtime: &HubRuntime<H>) {
        record_completion(runtime, self.method, self.started, self.ok, self.error);
    }
}

/// A panic, as the error it becomes.
pub(crate) fn panicked(message: &str) -> DispatchError {
    DispatchError::Failed {
        type_name: "Panic".to_owned(),
        message: message.to_owned(),
        hub_error: false,
    }
}

/// The Completion of a call that did not stream.
fn completion_for<H: Hub>(
    cx: &Task<H>,
    id: String,
    outcome: Result<Reply, DispatchError>,
    target: &str,
) -> Completion {
    match outcome {
        Ok(Reply::Unit | Reply::Stream(_)) => Completion::result(id, Value::null(cx.protocol())),
        Ok(Reply::Value(value)) => Completion::result(id, value),
        Err(error) => Completion::error(
            id,
            error.invocation_text(target, cx.shared().options.detailed_errors),
        ),
    }
}

/// The kind of a failure, for the span's `error.type`.
fn error_type(outcome: &Result<Reply, DispatchError>) -> Option<&'static str> {
    match outcome {
        Ok(_) => None,
        Err(DispatchError::Bind { .. }) => Some("bind"),
        Err(DispatchError::Failed { .. }) => Some("failed"),
        Err(DispatchError::MissingService { .. }) => Some("missing_service"),
        Err(DispatchError::Encode(_)) => Some("encode"),
        Err(DispatchError::Unauthorized) => Some("unauthorized"),
        Err(DispatchError::Refused { .. }) => Some("refused"),
    }
}

/// Records the end of an invocation: its span's outcome and its duration.
pub(crate) fn record_completion<H: Hub>(
    runtime: &HubRuntime<H>,
    (index, method): (usize, &'static str),
    started: std::time::Instant,
    ok: bool,
    error: Option<&'static str>,
) {
    let span = tracing::Span::current();
    span.record("signalr.outcome", if ok { "ok" } else { "error" });
    if let Some(error) = error {
        span.record("error.type", error);
    }
    runtime
        .shared
        .meters
        .invocation(index, method, ok, started.elapsed().as_secs_f64());
}

/// Sends a stream's items, each waiting while the connection's queue is over its pace (so
/// a slow client slows only its own streams), until it ends, fails or is cancelled. Returns the
/// final Completion, or `None` when the connection is gone.
pub(crate) async fn pump(
    mut stream: ReplyStream,
    id: &str,
    handle: &ConnectionHandle,
    cancel: &CancellationToken,
    target: &str,
    detailed: bool,
) -> Option<Completion> {
    loop {
        // A unit of tokio's cooperative budget per item, sent or dropped by a filter: a
        // stream that is always ready still yields its thread every so often, so that the
        // connection's writer and read loop run while it streams. Without it, on one
        // thread, it refilled the queue at every turn and the read loop (paused over
        // `pause_reading`) never read the client's CancelInvocation or next call.
        tokio::task::coop::consume_budget().await;
        let item = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                tracing::debug!("stream cancelled");
                return (!handle.is_closed()).then(|| Completion::void(id));
            }
            item = AssertUnwindSafe(stream.next()).catch_unwind() => match item {
                Ok(item) => item,
                Err(_) => {
                    tracing::error!(%target, "a hub method's stream panicked");
                    Some(Err(DispatchError::Failed {
                        type_name: "Panic".to_owned(),
                        message: "the stream panicked".to_owned(),
                        hub_error: false,
                    }))
                }
            },
        };
        match item {
            None => return Some(Completion::void(id)),
            Some(Ok(item)) => {
                tracing::trace!("stream item");
                let headers = match handle
                    .outgoing
                    .headers(crate::base::outgoing::OutgoingKind::StreamItem, None)
                {
                    Ok(headers) => headers,
                    Err(dropped) => {
                        tracing::debug!(reason = %dropped.0, "an outgoing filter dropped a stream item");
                        continue;
                    }
                };
                let message = HubMessage::StreamItem(StreamItem {
                    headers,
                    invocation_id: id.to_owned(),
                    item,
                });
                if !handle.reply_paced(&message).await {
                    return None;
                }
            }
            Some(Err(error)) => {
                tracing::debug!(?error, %target, "stream failed");
                return Some(Completion::error(
                    id,
                    error.streaming_text(target, detailed),
                ));
            }
        }
    }
}
