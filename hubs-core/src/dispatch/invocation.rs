//! Invocations of one connection: checked when read, queued for a free slot
//! (`max_parallel_invocations`), then run on a task of their own; or, when nothing of the
//! connection runs and nothing filters them, started on the read loop and moved to a task
//! only if they wait. One type,
//! [`InvocationGuard`], owns what a running invocation holds (its download, its uploads,
//! its slot, its cancellation) and releases all of it when dropped.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::base::error::DispatchError;
use crate::base::stream::Reply;
use crate::base::stream::{UploadReceiver, UploadSender};
use crate::connection::streams::Streams;
use crate::dispatch::completion::Completed;
use crate::dispatch::completion::panicked;
use crate::dispatch::completion::pump;
use crate::dispatch::completion::record_completion;
use crate::dispatch::task::Task;
use crate::hub::definition::{Call, Hub};
use hubs_protocol::wire;
use hubs_protocol::{Completion, HubMessage, Outcome, Value};

/// Invocations that may wait for a slot; past it the read loop stops reading until one
/// starts (as ASP.NET Core's receive loop waits for its dispatcher).
pub(crate) const MAX_QUEUED: usize = 1024;

/// What the client asked for, as read.
pub(crate) struct Received {
    pub(crate) invocation_id: Option<String>,
    pub(crate) target: String,
    pub(crate) arguments: Vec<Value>,
    pub(crate) stream_ids: Vec<String>,
    /// Whether the client used a StreamInvocation.
    pub(crate) streaming: bool,
    /// The message's headers (trace context).
    pub(crate) headers: hubs_protocol::Headers,
}

/// Everything one invocation holds on its connection, from the moment it is read until
/// its last message is queued. Dropping it (when the invocation completes, when the connection
/// closes while it waits, or when its task unwinds) releases it all.
pub(crate) struct InvocationGuard {
    streams: Arc<Streams>,
    download: Option<String>,
    uploads: Vec<(String, UploadSender)>,
    permit: Option<OwnedSemaphorePermit>,
    cancel: CancellationToken,
}

impl InvocationGuard {
    /// Gives the slot back early: a streaming method runs in the background once it has
    /// returned its stream.
    fn release_slot(&mut self) {
        self.permit = None;
    }

    /// Frees the invocation's stream ids (before its last message, so a client may reuse
    /// them as soon as it has it).
    fn release_streams(&mut self) {
        if let Some(id) = self.download.take() {
            self.streams.end_download(&id);
        }
        let uploads = std::mem::take(&mut self.uploads);
        self.streams.end_uploads(&uploads);
    }
}

impl Drop for InvocationGuard {
    fn drop(&mut self) {
        self.release_streams();
    }
}

/// An invocation waiting for a slot.
struct Queued {
    guard: InvocationGuard,
    method: usize,
    request: Received,
    uploads: Vec<UploadReceiver>,
}

/// The invocations of one connection that wait for a slot, and the slots.
pub(crate) struct Invocations {
    queue: VecDeque<Queued>,
    slots: Arc<Semaphore>,
    max_parallel: usize,
}

impl Invocations {
    pub(crate) fn new(max_parallel: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            slots: Arc::new(Semaphore::new(max_parallel)),
            max_parallel,
        }
    }

    /// Whether an invocation waits for a slot.
    pub(crate) fn waiting(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether the queue of invocations waiting for a slot is full: the read loop holds
    /// back until one starts.
    pub(crate) fn full(&self) -> bool {
        self.queue.len() >= MAX_QUEUED
    }

    /// The next free slot.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the reader is the only one acquiring slots.
    pub(crate) async fn slot(&self) -> OwnedSemaphorePermit {
        match self.slots.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Checks an invocation the client sent and queues it, or answers it with an error.
    /// Its download and uploads are registered now, so a CancelInvocation or items sent
    /// right behind it are not lost.
    pub(crate) fn accept<H: Hub>(&mut self, cx: &Task<H>, request: Received) {
        match self.check(cx, request) {
            Ok(queued) => {
                // An immediate method with nothing ahead of it and nothing running starts
                // here and now: no task or queue unless it waits (the common call,
                // cheapest; and a broadcast's fan-outs run back to back, so its
                // recipients' writers find several frames to write at once).
                if self.queue.is_empty()
                    && immediate(cx, &queued)
                    && self.slots.available_permits() == self.max_parallel
                    && let Ok(slot) = self.slots.clone().try_acquire_owned()
                {
                    run_now(cx, queued, slot);
                    return;
                }
                self.queue.push_back(queued);
            }
            Err((Some(id), text)) => {
                cx.handle()
                    .reply(&HubMessage::Completion(Completion::error(id, text)));
            }
            Err((None, text)) => tracing::debug!(error = %text, "non-blocking call refused"),
        }
    }

    fn check<H: Hub>(
        &self,
        cx: &Task<H>,
        request: Received,
    ) -> Result<Queued, (Option<String>, String)> {
        let target = &request.target;
        let refuse = |text: String| (request.invocation_id.clone(), text);
        let Some(method) = cx.runtime().method(target) else {
            private_method_hint::<H>(&cx.shared().name, target);
            return Err(refuse(wire::unknown_method(target)));
        };
        let descriptor = H::methods()[method];
        let detailed = cx.shared().options.detailed_errors;
        if descriptor.streaming && !request.streaming {
            return Err(refuse(wire::streaming_method_invoked(target)));
        }
        if !descriptor.streaming && request.streaming {
            return Err(refuse(wire::non_streaming_method_streamed(target)));
        }
        if request.stream_ids.len() != descriptor.uploads {
            return Err(refuse(wire::stream_count_mismatch(
                target,
                request.stream_ids.len(),
                descriptor.uploads,
            )));
        }
        if request.arguments.len() != descriptor.params {
            let error = DispatchError::Bind {
                detail: wire::argument_count_mismatch(request.arguments.len(), descriptor.params),
            };
            return Err(refuse(error.invocation_text(target, detailed)));
        }
        let streams = cx.streams().clone();
        // Only a stream is cancelled on its own (CancelInvocation); any other call ends
        // with its connection, so it shares the connection's token (a child token per
        // call costs a lock and an allocation).
        let connection = cx.handle().close_handle().token();
        let cancel = if request.streaming {
            connection.child_token()
        } else {
            connection.clone()
        };
        let mut guard = InvocationGuard {
            streams: streams.clone(),
            download: None,
            uploads: Vec::new(),
            permit: None,
            cancel: cancel.clone(),
        };
        if request.streaming {
            let id = request.invocation_id.clone().unwrap_or_default();
            if !streams.start_download(&id, cancel) {
                return Err(refuse(wire::invocation_id_in_use(&id)));
            }
            guard.download = Some(id);
        }
        let opened = match streams.open_uploads(&request.stream_ids) {
            Ok(opened) => opened,
            Err(in_use) => return Err(refuse(wire::invocation_id_in_use(&in_use))),
        };
        let mut uploads = Vec::with_capacity(opened.len());
        for (id, (sender, receiver)) in request.stream_ids.iter().zip(opened) {
            guard.uploads.push((id.clone(), sender));
            uploads.push(receiver);
        }
        Ok(Queued {
            guard,
            method,
            request,
            uploads,
        })
    }

    /// Starts the invocation at the head of the queue in `slot`.
    pub(crate) fn start_next<H: Hub>(&mut self, cx: &Task<H>, slot: OwnedSemaphorePermit) {
        let Some(mut queued) = self.queue.pop_front() else {
            return;
        };
        queued.guard.permit = Some(slot);
        let span = invocation_span(cx, &queued);
        tokio::spawn(run(cx.clone(), queued).instrument(span));
    }
}

/// The invocation's span, after OpenTelemetry's RPC conventions; a child of the
/// connection's span, continuing the caller's trace.
fn invocation_span<H: Hub>(cx: &Task<H>, queued: &Queued) -> tracing::Span {
    let method = H::methods()[queued.method].name;
    let runtime = cx.runtime();
    let span = tracing::info_span!(
        "signalr.invocation",
        otel.name = format!("{}/{method}", runtime.name()),
        otel.kind = "server",
        rpc.system = "signalr",
        rpc.service = runtime.name(),
        rpc.method = method,
        signalr.invocation.id = queued.request.invocation_id.as_deref(),
        signalr.outcome = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    hubs_protocol::trace_context::continue_trace(&span, &queued.request.headers);
    span
}

/// Whether `queued` may run on the read loop: an immediate method, called plainly, with
/// no filter or requirement around it.
fn immediate<H: Hub>(cx: &Task<H>, queued: &Queued) -> bool {
    let descriptor = &H::methods()[queued.method];
    descriptor.immediate
        && !queued.request.streaming
        && queued.uploads.is_empty()
        && descriptor.authorize.is_none()
        && cx.runtime().chains[queued.method].is_empty()
}

/// Starts an immediate method on the read loop and queues its Completion; a method that
/// waits, or a full queue, leaves the rest to a task.
fn run_now<H: Hub>(cx: &Task<H>, mut queued: Queued, slot: OwnedSemaphorePermit) {
    queued.guard.permit = Some(slot);
    let span = invocation_span(cx, &queued);
    let _entered = span.enter();
    let Queued {
        mut guard,
        method,
        request,
        uploads,
    } = queued;
    let started = std::time::Instant::now();
    let runtime = cx.runtime();
    let mut call = runtime.hub.clone().invoke(
        method,
        Call::new(
            cx.context().current(),
            request.arguments,
            uploads,
            guard.cancel.clone(),
        ),
    );
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().now_or_never()));
    let outcome = match polled {
        Ok(Some(outcome)) => outcome,
        Ok(None) => {
            // It waits: finish it as a task does, holding the slot.
            drop(_entered);
            let cx = cx.clone();
            let (id, target) = (request.invocation_id, request.target);
            let task = async move {
                let outcome = AssertUnwindSafe(call)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(panicked("the hub method panicked")));
                conclude(&cx, guard, method, id, &target, outcome, started).await;
            };
            tokio::spawn(task.instrument(span.clone()));
            return;
        }
        Err(_) => {
            tracing::error!("hub method panicked");
            Err(panicked("the hub method panicked"))
        }
    };
    let conclusion = Completed::new(
        cx,
        method,
        request.invocation_id,
        &request.target,
        outcome,
        started,
    );
    guard.release_streams();
    conclusion.send(cx);
    drop(guard);
    conclusion.record(runtime);
}

/// Queues the Completion of a call that did not stream, then releases what it held.
async fn conclude<H: Hub>(
    cx: &Task<H>,
    mut guard: InvocationGuard,
    method: usize,
    invocation_id: Option<String>,
    target: &str,
    outcome: Result<Reply, DispatchError>,
    started: std::time::Instant,
) {
    let conclusion = Completed::new(cx, method, invocation_id, target, outcome, started);
    guard.release_streams();
    conclusion.send(cx);
    drop(guard);
    conclusion.record(cx.runtime());
}

/// Runs one invocation to its last message.
async fn run<H: Hub>(cx: Task<H>, queued: Queued) {
    let Queued {
        mut guard,
        method,
        request,
        uploads,
    } = queued;
    let Received {
        invocation_id,
        target,
        arguments,
        streaming,
        ..
    } = request;
    let started = std::time::Instant::now();
    let outcome = AssertUnwindSafe(call_through_filters(
        cx.clone(),
        method,
        arguments,
        uploads,
        guard.cancel.clone(),
    ))
    .catch_unwind()
    .await
    .unwrap_or_else(|_| {
        tracing::error!("hub method panicked");
        Err(panicked("the hub method panicked"))
    });
    let stream = match outcome {
        Ok(Reply::Stream(stream)) if streaming && invocation_id.is_some() => stream,
        outcome => {
            return conclude(&cx, guard, method, invocation_id, &target, outcome, started).await;
        }
    };
    let id = invocation_id.unwrap_or_default();
    let runtime = cx.runtime();
    let method_name = H::methods()[method].name;
    let handle = cx.handle();
    guard.release_slot();
    let detailed = runtime.shared.options.detailed_errors;
    let Some(completion) = pump(stream, &id, handle, &guard.cancel, &target, detailed).await else {
        record_completion(
            runtime,
            (method, method_name),
            started,
            false,
            Some("disconnected"),
        );
        return;
    };
    let ok = !matches!(completion.outcome, Outcome::Error(_));
    guard.release_streams();
    handle.reply(&HubMessage::Completion(completion));
    drop(guard);
    record_completion(
        runtime,
        (method, method_name),
        started,
        ok,
        (!ok).then_some("stream"),
    );
}

/// Checks the method's requirement, then runs the filter chain (the server's and the
/// hub's filters, the method's limits) around the method.
async fn call_through_filters<H: Hub>(
    cx: Task<H>,
    method: usize,
    arguments: Vec<hubs_protocol::Value>,
    uploads: Vec<crate::base::stream::UploadReceiver>,
    cancel: CancellationToken,
) -> Result<Reply, DispatchError> {
    let runtime = cx.runtime().clone();
    let descriptor = H::methods()[method];
    // The user as of now: an authentication refresh may have replaced it.
    let context = cx.context().current();
    if let Some(requirement) = &descriptor.authorize {
        let verdict = runtime
            .check(requirement, context.user_arc(), Some(descriptor.name))
            .await;
        if verdict != crate::base::authorization::Verdict::Allowed {
            return Err(DispatchError::Unauthorized);
        }
    }
    let chain = runtime.chains[method].clone();
    let hub = runtime.hub.clone();
    if chain.is_empty() {
        return hub
            .invoke(method, Call::new(context, arguments, uploads, cancel))
            .await;
    }
    let invocation = crate::base::filter::HubInvocation::new(
        runtime.shared.name.clone(),
        (descriptor.name, method),
        cx.connection_id().clone(),
        context.user_arc(),
        cx.user_identifier().map(std::sync::Arc::from),
        cx.protocol(),
        arguments,
    );
    let last = Box::new(move |invocation: crate::base::filter::HubInvocation| {
        hub.invoke(
            method,
            Call::new(context, invocation.arguments, uploads, cancel),
        )
    });
    crate::base::filter::Next::new(chain, last)
        .run(invocation)
        .await
}

/// A client called `target`, which is no hub method: when it names a private function of
/// the `#[hub]` block, the likely mistake is a missing `pub`, and the log says so (at most
/// once a second: clients choose what they call).
fn private_method_hint<H: Hub>(hub: &str, target: &str) {
    static THROTTLE: std::sync::LazyLock<crate::base::throttle::Throttle> =
        std::sync::LazyLock::new(crate::base::throttle::Throttle::new);
    let Some((_, function)) = H::private_methods()
        .iter()
        .find(|(wire, _)| wire.eq_ignore_ascii_case(target))
    else {
        return;
    };
    if THROTTLE.allow().is_some() {
        tracing::warn!(
            hub,
            method = target,
            "a client called `{target}`, which is the private function `{function}` of the `#[hub]` block, not a hub method: make it `pub` to let clients call it"
        );
    }
}
