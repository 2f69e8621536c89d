//! One connection's task: handshake, reading and dispatching messages, keep-alive and
//! client timeout, and the orderly end. Transport-agnostic: bytes come in as a stream and
//! frames go out through the connection's queue.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::{ConnectionState, Context, Items};
use crate::error::{HubError, InvokeError, with_detail};
use crate::hub::{Call, Hub, Reply};
use crate::lifetime::{ConnectionHandle, Frame};
use crate::options::TransportKind;
use crate::protocol::{
    Close, Completion, DecodeError, HandshakeRequest, HandshakeResponse, HubMessage, Outcome,
    Protocol, StreamInvocation, StreamItem, TransferFormat, Value,
};
use crate::runtime::{Connected, HubRuntime, Incoming, TransportConnection};
use crate::stream::{ReplyStream, StreamRegistry, UploadItem};

/// Invocations waiting for a free slot before the connection stops reading.
const MAX_PENDING: usize = 1024;

pub(crate) fn start<H: Hub>(
    runtime: Arc<HubRuntime<H>>,
    connection: TransportConnection,
) -> Connected {
    let (tx, rx) = mpsc::channel(runtime.options.outbound_capacity);
    let closed = CancellationToken::new();
    // A child of the hub's shutdown token: shutting down ends every connection, and each
    // connection waits on its own token only.
    let abort = runtime.shutdown.child_token();
    let span = tracing::debug_span!(
        "connection",
        id = %connection.connection_id,
        transport = connection.transport.name(),
        protocol = tracing::field::Empty,
    );
    let task = run(runtime, connection, tx, closed.clone(), abort.clone()).instrument(span);
    Connected {
        outgoing: rx,
        closed,
        abort,
        task: Box::pin(task),
    }
}

/// How a connection ended.
enum Ending {
    /// The transport went away without a Close message.
    TransportGone,
    /// The client sent Close (with its error, if any).
    ClientClosed(Option<String>),
    /// Hub code called `abort`.
    Aborted,
    /// The server is shutting down.
    Shutdown,
    /// A protocol error, a timeout or a failed hook: Close with this error.
    Error { text: String, allow_reconnect: bool },
}

async fn run<H: Hub>(
    runtime: Arc<HubRuntime<H>>,
    connection: TransportConnection,
    tx: mpsc::Sender<Frame>,
    closed: CancellationToken,
    abort: CancellationToken,
) {
    let TransportConnection {
        connection_id,
        request,
        transport,
        mut incoming,
    } = connection;
    let options = &runtime.options;
    let detailed = options.detailed_errors;

    let handshake = handshake(&runtime, &mut incoming, transport).await;
    let (protocol, leftover) = match handshake {
        Ok(ok) => ok,
        Err(Some(text)) => {
            tracing::debug!(error = %text, "handshake failed");
            let mut out = Vec::new();
            HandshakeResponse::error(text).encode(&mut out);
            let _ = tx.try_send(Frame {
                bytes: out.into(),
                binary: false,
            });
            abort.cancel();
            closed.cancel();
            return;
        }
        Err(None) => {
            abort.cancel();
            closed.cancel();
            return;
        }
    };
    tracing::Span::current().record("protocol", protocol.name());
    let mut out = Vec::new();
    HandshakeResponse::ok().encode(&mut out);
    let _ = tx.try_send(Frame {
        bytes: out.into(),
        binary: protocol.transfer_format() == TransferFormat::Binary,
    });

    let user = options
        .user_id
        .as_ref()
        .and_then(|provider| provider(&request));
    let handle = Arc::new(ConnectionHandle::new(
        connection_id,
        user,
        protocol,
        tx.clone(),
        abort.clone(),
        options.send_timeout,
    ));
    let state = Arc::new(ConnectionState {
        handle: handle.clone(),
        request,
        transport,
        items: Items::default(),
        closed: abort.clone(),
        streams: StreamRegistry::default(),
    });
    let cx = Context::new(state, runtime.clone());
    runtime.lifetime.on_connected(handle.clone()).await;
    tracing::debug!("connected");

    let ending = match AssertUnwindSafe(runtime.hub.clone().on_connected(cx.clone()))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => {
            let mut decoder = protocol
                .decoder()
                .with_max_message_size(options.max_message_size);
            decoder.push(&leftover);
            let mut reader = Reader {
                runtime: &runtime,
                cx: &cx,
                handle: &handle,
                pending: VecDeque::new(),
                semaphore: Arc::new(Semaphore::new(options.max_parallel_invocations)),
                ping_received: false,
                abort: &abort,
            };
            reader.run(&mut incoming, decoder).await
        }
        Ok(Err(error)) => Ending::Error {
            text: closed_with_error(detailed, Some(("HubException", error.message())), true),
            allow_reconnect: false,
        },
        Err(_) => {
            tracing::error!("on_connected panicked");
            Ending::Error {
                text: closed_with_error(detailed, Some(("Panic", "on_connected panicked")), false),
                allow_reconnect: false,
            }
        }
    };

    // No more writes through the handle (pending client results fail); then the final
    // Close, then the transport drains the queue and closes.
    abort.cancel();
    handle.fail_results();
    cx.streams().close();
    let (close, disconnect_error) = match ending {
        Ending::TransportGone => (None, None),
        Ending::ClientClosed(error) => (Some(Close::default()), error.map(HubError::new)),
        Ending::Aborted => (Some(Close::default()), None),
        Ending::Shutdown => (
            Some(Close {
                error: None,
                allow_reconnect: true,
            }),
            None,
        ),
        Ending::Error {
            text,
            allow_reconnect,
        } => (
            Some(Close {
                error: Some(text.clone()),
                allow_reconnect,
            }),
            Some(HubError::new(text)),
        ),
    };
    if let Some(close) = close {
        let mut out = Vec::new();
        if protocol.encode(&HubMessage::Close(close), &mut out).is_ok() {
            let _ = tx.try_send(Frame {
                bytes: out.into(),
                binary: protocol == Protocol::MessagePack,
            });
        }
    }
    closed.cancel();
    runtime.lifetime.on_disconnected(&handle).await;
    if AssertUnwindSafe(runtime.hub.clone().on_disconnected(cx, disconnect_error))
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("on_disconnected panicked");
    }
    tracing::debug!("disconnected");
}

/// `Connection closed with an error.` and, when allowed, ` Type: message`.
fn closed_with_error(detailed: bool, detail: Option<(&str, &str)>, hub_error: bool) -> String {
    with_detail(
        "Connection closed with an error.".to_owned(),
        detail.filter(|_| detailed || hub_error),
    )
}

/// Reads the handshake. `Err(Some(text))` answers the client with an error; `Err(None)`
/// means the client went away.
async fn handshake<H: Hub>(
    runtime: &HubRuntime<H>,
    incoming: &mut Incoming,
    transport: crate::options::TransportKind,
) -> Result<(Protocol, BytesMut), Option<String>> {
    let options = &runtime.options;
    let mut buf = BytesMut::new();
    let deadline = tokio::time::sleep(options.handshake_timeout);
    tokio::pin!(deadline);
    let request = loop {
        match HandshakeRequest::decode(&mut buf, options.max_message_size) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(DecodeError::TooLarge { .. }) => {
                return Err(Some("Handshake was canceled.".to_owned()));
            }
            Err(error) => {
                let mut text =
                    "An unexpected error occurred during connection handshake.".to_owned();
                if options.detailed_errors {
                    text.push_str(" InvalidDataException: ");
                    text.push_str(&error.to_string());
                }
                return Err(Some(text));
            }
        }
        tokio::select! {
            chunk = incoming.next() => match chunk {
                Some(chunk) => buf.extend_from_slice(&chunk),
                None => return Err(None),
            },
            () = &mut deadline => return Err(Some("Handshake was canceled.".to_owned())),
        }
    };
    let name = request.protocol;
    let Some(protocol) = Protocol::from_name(&name).filter(|p| options.protocols.contains(p))
    else {
        return Err(Some(format!("The protocol '{name}' is not supported.")));
    };
    if request.version > Protocol::MAX_VERSION {
        return Err(Some(format!(
            "The server does not support version {} of the '{name}' protocol.",
            request.version
        )));
    }
    if protocol.transfer_format() == TransferFormat::Binary && !transport.supports_binary() {
        return Err(Some(format!(
            "Cannot use the '{name}' protocol on the current transport. The transport does not support 'Binary' transfer format."
        )));
    }
    Ok((protocol, buf))
}

/// An invocation waiting for a free slot.
struct PendingCall {
    method: usize,
    invocation_id: Option<String>,
    target: String,
    arguments: Vec<Value>,
    /// Whether the client used a stream invocation.
    streaming: bool,
    stream_ids: Vec<String>,
    uploads: Vec<mpsc::Receiver<UploadItem>>,
    cancel: CancellationToken,
}

/// The read side of an established connection.
struct Reader<'a, H: Hub> {
    runtime: &'a Arc<HubRuntime<H>>,
    cx: &'a Context<H>,
    handle: &'a Arc<ConnectionHandle>,
    pending: VecDeque<PendingCall>,
    semaphore: Arc<Semaphore>,
    ping_received: bool,
    abort: &'a CancellationToken,
}

impl<H: Hub> Reader<'_, H> {
    async fn run(
        &mut self,
        incoming: &mut Incoming,
        mut decoder: crate::protocol::MessageDecoder,
    ) -> Ending {
        let options = &self.runtime.options;
        let beat = options
            .keep_alive_interval
            .min(options.client_timeout / 2)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        let mut heartbeat = tokio::time::interval(beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_write = Instant::now();
        let mut last_received = Instant::now();
        let abort = self.abort.clone();
        // One waiter for the whole connection (registering one per message is costly).
        let aborted = abort.cancelled();
        tokio::pin!(aborted);

        // Messages that arrived with the handshake.
        if let Some(ending) = self.drain(&mut decoder).await {
            return ending;
        }
        loop {
            tokio::select! {
                biased;
                () = &mut aborted => {
                    return if self.runtime.shutdown.is_cancelled() { Ending::Shutdown } else { Ending::Aborted };
                }
                permit = self.semaphore.clone().acquire_owned(), if !self.pending.is_empty() => {
                    if let (Ok(permit), Some(call)) = (permit, self.pending.pop_front()) {
                        self.spawn(call, permit);
                    }
                }
                chunk = incoming.next(), if self.pending.len() < MAX_PENDING => {
                    let Some(chunk) = chunk else { return Ending::TransportGone };
                    last_received = Instant::now();
                    decoder.push(&chunk);
                    if let Some(ending) = self.drain(&mut decoder).await {
                        return ending;
                    }
                }
                // Long polling keeps itself alive: no pings, no client timeout.
                _ = heartbeat.tick(), if self.cx.transport() != TransportKind::LongPolling => {
                    // A Ping when nothing went out for the keep-alive interval. Writes are
                    // noticed at the next beat, so the longest silence is the interval plus
                    // one beat (as the official server, whose heartbeat is 1 s).
                    let now = Instant::now();
                    if self.handle.take_wrote() {
                        last_write = now;
                    } else if now.duration_since(last_write) + beat / 2 >= options.keep_alive_interval {
                        last_write = now;
                        self.ping();
                        // The Ping is not news at the next beat.
                        self.handle.take_wrote();
                    }
                    if self.ping_received && now.duration_since(last_received) > options.client_timeout {
                        tracing::debug!("client timeout");
                        return Ending::Error {
                            text: closed_with_error(
                                options.detailed_errors,
                                Some(("TimeoutException", "Client hasn't sent a message/ping within the configured ClientTimeoutInterval.")),
                                false,
                            ),
                            allow_reconnect: true,
                        };
                    }
                }
            }
        }
    }

    fn ping(&self) {
        let mut out = Vec::new();
        if self
            .handle
            .protocol()
            .encode(&HubMessage::Ping, &mut out)
            .is_ok()
        {
            // A full queue means data is on its way, which keeps the client alive too.
            let _ = self.handle.try_write(out.into());
        }
    }

    /// Handles every complete message; `Some` ends the connection.
    async fn drain(&mut self, decoder: &mut crate::protocol::MessageDecoder) -> Option<Ending> {
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    if let Some(ending) = self.handle_message(message).await {
                        return Some(ending);
                    }
                }
                Ok(None) => return None,
                Err(DecodeError::UnknownMessageType(kind)) => {
                    tracing::debug!(kind, "ignoring a message of unknown type");
                }
                Err(error) => {
                    tracing::debug!(%error, "protocol error");
                    let detail = match &error {
                        DecodeError::TooLarge { max } => format!(
                            "The maximum message size of {max}B was exceeded. The message size can be configured in AddHubOptions."
                        ),
                        other => other.to_string(),
                    };
                    return Some(Ending::Error {
                        text: closed_with_error(
                            self.runtime.options.detailed_errors,
                            Some(("InvalidDataException", &detail)),
                            false,
                        ),
                        allow_reconnect: true,
                    });
                }
            }
        }
    }

    async fn handle_message(&mut self, message: HubMessage) -> Option<Ending> {
        match message {
            HubMessage::Invocation(invocation) => {
                return self.call(
                    invocation.invocation_id,
                    invocation.target,
                    invocation.arguments,
                    invocation.stream_ids,
                    false,
                );
            }
            HubMessage::StreamInvocation(StreamInvocation {
                invocation_id,
                target,
                arguments,
                stream_ids,
                ..
            }) => return self.call(Some(invocation_id), target, arguments, stream_ids, true),
            HubMessage::StreamItem(StreamItem {
                invocation_id,
                item,
                ..
            }) => {
                return self.upload_item(&invocation_id, Ok(item)).await;
            }
            HubMessage::Completion(completion) => {
                // Uploads first, then client results, as the official server does.
                if let Some(upload) = self.cx.streams().end_upload(&completion.invocation_id) {
                    if let Outcome::Error(error) = completion.outcome {
                        let _ = upload.try_send(Err(error));
                    }
                } else {
                    let id = completion.invocation_id.clone();
                    if !self.handle.complete(completion) {
                        tracing::debug!(%id, "completion for an unknown invocation; ignored");
                    }
                }
            }
            HubMessage::CancelInvocation(cancel) => {
                if !self.cx.streams().cancel_download(&cancel.invocation_id) {
                    tracing::debug!(id = %cancel.invocation_id, "cancel for an unknown stream; ignored");
                }
            }
            HubMessage::Ping => self.ping_received = true,
            HubMessage::Close(close) => return Some(Ending::ClientClosed(close.error)),
            HubMessage::Ack(_) | HubMessage::Sequence(_) => {
                tracing::debug!("stateful reconnect message on a connection without it; ignored");
            }
        }
        None
    }

    /// Feeds an upload, waiting while its buffer is full: a client streaming faster than
    /// the method consumes is slowed down, nothing is dropped.
    async fn upload_item(&mut self, id: &str, item: UploadItem) -> Option<Ending> {
        let Some(upload) = self.cx.streams().upload(id) else {
            tracing::debug!(%id, "item for an unknown or finished upload; ignored");
            return None;
        };
        let item = match upload.try_send(item) {
            Ok(()) => return None,
            Err(mpsc::error::TrySendError::Closed(_)) => return None,
            Err(mpsc::error::TrySendError::Full(item)) => item,
        };
        tokio::select! {
            _ = upload.send(item) => None,
            () = self.abort.cancelled() => Some(Ending::Aborted),
            () = self.runtime.shutdown.cancelled() => Some(Ending::Shutdown),
        }
    }

    /// An Invocation or StreamInvocation: checks it, then queues it for a free slot.
    fn call(
        &mut self,
        invocation_id: Option<String>,
        target: String,
        arguments: Vec<Value>,
        stream_ids: Vec<String>,
        streaming: bool,
    ) -> Option<Ending> {
        let detailed = self.runtime.options.detailed_errors;
        let Some(method) = self.runtime.method(&target) else {
            match invocation_id {
                Some(id) => self.complete_with_error(id, unknown_method(&target)),
                None => tracing::debug!(%target, "non-blocking call to an unknown method; ignored"),
            }
            return None;
        };
        let descriptor = H::methods()[method];
        let error = if descriptor.streaming && !streaming {
            Some(format!(
                "The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
            ))
        } else if !descriptor.streaming && streaming {
            Some(format!(
                "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
            ))
        } else if stream_ids.len() != descriptor.uploads {
            Some(format!(
                "An unexpected error occurred invoking '{target}' on the server. HubException: Client sent {} stream(s), Hub method expects {}.",
                stream_ids.len(),
                descriptor.uploads
            ))
        } else if arguments.len() != descriptor.params {
            Some(
                InvokeError::Bind {
                    detail: format!(
                        "Invocation provides {} argument(s) but target expects {}.",
                        arguments.len(),
                        descriptor.params
                    ),
                }
                .wire_text(&target, detailed),
            )
        } else {
            None
        };
        if let Some(text) = error {
            match invocation_id {
                Some(id) => self.complete_with_error(id, text),
                None => tracing::debug!(%target, error = %text, "non-blocking call failed"),
            }
            return None;
        }
        let cancel = self.abort.child_token();
        if streaming {
            let id = invocation_id.as_deref().unwrap_or_default();
            if !self.cx.streams().start_download(id, cancel.clone()) {
                self.complete_with_error(
                    id.to_owned(),
                    format!("Invocation ID '{id}' is already in use."),
                );
                return None;
            }
        }
        // Uploads open now, so items sent right behind the invocation are buffered.
        let Some(uploads) = self.cx.streams().open_uploads(&stream_ids) else {
            if let Some(id) = &invocation_id {
                if streaming {
                    self.cx.streams().end_download(id);
                }
                self.complete_with_error(id.clone(), "A stream ID is already in use.".to_owned());
            }
            return None;
        };
        self.pending.push_back(PendingCall {
            method,
            invocation_id,
            target,
            arguments,
            streaming,
            stream_ids,
            uploads,
            cancel,
        });
        None
    }

    fn complete_with_error(&self, id: String, text: String) {
        let handle = self.handle.clone();
        let message = HubMessage::Completion(Completion::error(id, text));
        tokio::spawn(async move {
            let _ = handle.send_message(&message).await;
        });
    }

    fn spawn(&self, call: PendingCall, permit: OwnedSemaphorePermit) {
        let PendingCall {
            method,
            invocation_id,
            target,
            arguments,
            streaming,
            stream_ids,
            uploads,
            cancel,
        } = call;
        let hub = self.runtime.hub.clone();
        let cx = self.cx.clone();
        let handle = self.handle.clone();
        let detailed = self.runtime.options.detailed_errors;
        let span = tracing::debug_span!("invocation", %target, id = invocation_id.as_deref());
        tokio::spawn(
            async move {
                let protocol = cx.protocol();
                let call = Call::new(cx.clone(), arguments, uploads, cancel.clone());
                let outcome = AssertUnwindSafe(hub.invoke(method, call))
                    .catch_unwind()
                    .await;
                // Streaming methods run in the background once started; other calls keep
                // their slot until their Completion is queued, so with one slot the
                // completions go out in order. Uploads end with the method, or with the
                // stream it returned (which may read them).
                let returned_stream = matches!(outcome, Ok(Ok(Reply::Stream(_))));
                let permit = (!returned_stream).then_some(permit);
                if !returned_stream {
                    cx.streams().end_uploads(&stream_ids);
                }
                let outcome = outcome.unwrap_or_else(|_| {
                    tracing::error!("hub method panicked");
                    Err(InvokeError::Failed {
                        type_name: "Panic".to_owned(),
                        message: "the hub method panicked".to_owned(),
                        hub_error: false,
                    })
                });
                if let Err(error) = &outcome {
                    tracing::debug!(?error, "invocation failed");
                }
                let Some(id) = invocation_id else {
                    if returned_stream {
                        cx.streams().end_uploads(&stream_ids);
                    }
                    return;
                };
                let completion = match outcome {
                    Ok(Reply::Stream(stream)) if streaming => {
                        let completion =
                            pump(stream, &id, &handle, &cancel, &target, detailed).await;
                        cx.streams().end_download(&id);
                        cx.streams().end_uploads(&stream_ids);
                        match completion {
                            Some(completion) => completion,
                            None => return,
                        }
                    }
                    Ok(Reply::Unit | Reply::Stream(_)) => {
                        Completion::result(id, Value::null(protocol))
                    }
                    Ok(Reply::Value(value)) => Completion::result(id, value),
                    Err(error) => {
                        if streaming {
                            cx.streams().end_download(&id);
                        }
                        Completion::error(id, error.wire_text(&target, detailed))
                    }
                };
                let _ = handle
                    .send_message(&HubMessage::Completion(completion))
                    .await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Sends a stream's items, each waiting for room in the connection's queue (so a slow
/// client slows only its own streams), until it ends, fails or is cancelled. Returns the
/// final Completion, or `None` when the connection is gone.
async fn pump(
    mut stream: ReplyStream,
    id: &str,
    handle: &ConnectionHandle,
    cancel: &CancellationToken,
    target: &str,
    detailed: bool,
) -> Option<Completion> {
    loop {
        let item = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                tracing::debug!("stream cancelled");
                return (!handle.is_closed()).then(|| Completion::void(id));
            }
            item = stream.next() => item,
        };
        match item {
            None => return Some(Completion::void(id)),
            Some(Ok(item)) => {
                let message = HubMessage::StreamItem(StreamItem {
                    headers: Default::default(),
                    invocation_id: id.to_owned(),
                    item,
                });
                if handle.send_message(&message).await.is_err() {
                    return None;
                }
            }
            Some(Err(error)) => {
                tracing::debug!(?error, %target, "stream failed");
                let text = match error {
                    InvokeError::Failed {
                        type_name,
                        message,
                        hub_error,
                    } => with_detail(
                        "An error occurred on the server while streaming results.".to_owned(),
                        (detailed || hub_error).then_some((type_name.as_str(), message.as_str())),
                    ),
                    other => with_detail(
                        "An error occurred on the server while streaming results.".to_owned(),
                        detailed.then_some((
                            "InvalidDataException",
                            other.wire_text(target, true).as_str(),
                        )),
                    ),
                };
                return Some(Completion::error(id, text));
            }
        }
    }
}

fn unknown_method(target: &str) -> String {
    format!("Unknown hub method '{target}'")
}
