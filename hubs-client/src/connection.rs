//! [`HubConnection`]: the handle users hold. Each method is a command to the connection's
//! supervisor, or a message for it to send.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hubs_protocol::{Arguments, TransportKind, wire};
use hubs_protocol::{HubMessage, Invocation, Outcome, Protocol, StreamInvocation, Value};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument;

use crate::arguments::FromArguments;
use crate::command::{Call, Command};
use crate::config::Config;
use crate::dispatch::{self, DispatchItem, HandlerReply};
use crate::error::{InvokeError, RefreshError, StartError};
use crate::events::{ConnectionEvent, ConnectionState, Status};
use crate::stream::{self, ClientStream, Upload};
use crate::supervisor::Supervisor;

/// The span of one call to the server, named as the server's (OpenTelemetry's RPC
/// conventions, from the client's side).
fn call_span(method: &str) -> tracing::Span {
    tracing::info_span!(
        "signalr.invocation",
        otel.name = method,
        otel.kind = "client",
        rpc.system = "signalr",
        rpc.method = method,
    )
}

/// A connection to a hub. Cheap to clone; every clone is the same connection. When the last
/// clone is dropped the connection stops (a clone moved into a handler counts: call
/// [`stop`](Self::stop) to close a connection whose handlers hold it).
#[derive(Clone)]
pub struct HubConnection {
    shared: Arc<Shared>,
}

struct Shared {
    config: Arc<Config>,
    commands: mpsc::UnboundedSender<Command>,
    dispatch: mpsc::UnboundedSender<DispatchItem>,
    status: watch::Receiver<Status>,
    events: broadcast::Sender<ConnectionEvent>,
    next_id: AtomicU64,
    /// The supervisor and the dispatcher, until the first `start` spawns them (building a
    /// connection needs no runtime).
    idle: Mutex<Option<(Supervisor, dispatch::Dispatcher)>>,
}

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("url", &self.shared.config.url)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl HubConnection {
    pub(crate) fn from_config(config: Config) -> Self {
        let config = Arc::new(config);
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (dispatch_tx, dispatch) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Status::default());
        let (events, _) = broadcast::channel(64);
        let dispatcher = dispatch::Dispatcher::new(dispatch, commands_tx.downgrade(), &config);
        let supervisor = Supervisor::new(
            config.clone(),
            commands,
            dispatch_tx.clone(),
            status_tx,
            events.clone(),
        );
        Self {
            shared: Arc::new(Shared {
                config,
                commands: commands_tx,
                dispatch: dispatch_tx,
                status,
                events,
                next_id: AtomicU64::new(1),
                idle: Mutex::new(Some((supervisor, dispatcher))),
            }),
        }
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.shared.status.borrow().state
    }

    /// The connection id the server gave (none before start, or with skip negotiation).
    pub fn connection_id(&self) -> Option<String> {
        self.shared.status.borrow().connection_id.clone()
    }

    /// The transport in use.
    pub fn transport(&self) -> Option<TransportKind> {
        self.shared.status.borrow().transport
    }

    /// Whether the connection uses stateful reconnect (asked for on the builder, accepted
    /// by the server, over WebSockets).
    pub fn is_stateful(&self) -> bool {
        self.shared.status.borrow().stateful
    }

    /// Events: reconnecting, reconnected, resumed, closed, authentication refreshed or
    /// not.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.events.subscribe()
    }

    /// Starts the connection: negotiate, transport, handshake.
    ///
    /// # Errors
    ///
    /// [`StartError`] when no transport connects, negotiate fails, the handshake fails
    /// ([`HandshakeError`](crate::HandshakeError): refused, timed out, malformed answer,
    /// closed), the connection is not disconnected, or `stop` is called meanwhile.
    pub async fn start(&self) -> Result<(), StartError> {
        self.spawn_tasks();
        let (reply, started) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Start(reply))
            .map_err(|_| StartError::State)?;
        started.await.unwrap_or(Err(StartError::State))
    }

    fn spawn_tasks(&self) {
        let idle = self
            .shared
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((supervisor, dispatcher)) = idle {
            tokio::spawn(supervisor.run());
            tokio::spawn(dispatcher.run());
        }
    }

    /// Stops the connection: sends Close, waits for the transport to write it, and closes
    /// the transport. Pending calls fail; a reconnect in progress stops.
    pub async fn stop(&self) {
        let (reply, stopped) = oneshot::channel();
        if self.shared.commands.send(Command::Stop(reply)).is_ok() {
            let _ = stopped.await;
        }
    }

    /// Refreshes the connection's authentication now (`@microsoft/signalr` 11's
    /// `refreshAuthentication`): `POST {hub url}/refresh` with a new token from the
    /// [`access_token`](crate::HubConnectionBuilder::access_token) provider (never the one
    /// in use), the builder's headers and the connection token, so that the server
    /// extends the connection's authentication. On success, that token (or one the server
    /// handed out in its answer) is the one later long polls, sends and the DELETE carry,
    /// and the timer of
    /// [`with_authentication_refresh`](crate::HubConnectionBuilder::with_authentication_refresh),
    /// when it is on, is armed again from the new lifetime. Returns the token lifetime the
    /// server reported, if any. Either way
    /// [`ConnectionEvent::AuthenticationRefreshed`] or
    /// [`ConnectionEvent::AuthenticationRefreshFailed`] follows. The server must support
    /// it (hubs with refresh enabled, ASP.NET Core 11, Azure SignalR); an open WebSocket or
    /// event stream keeps the credentials it connected with.
    ///
    /// ```no_run
    /// # async fn f(connection: hubs_client::HubConnection) {
    /// match connection.refresh_authentication().await {
    ///     Ok(Some(lifetime)) => println!("refreshed, good for {lifetime:?}"),
    ///     Ok(None) => println!("refreshed"),
    ///     Err(error) => eprintln!("not refreshed: {error}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RefreshError::NotConnected`] when the connection is not connected (or stops
    /// meanwhile), [`RefreshError::NotHttp`] when it did not negotiate,
    /// [`RefreshError::Status`] for any answer but 200 (a 401 is not retried),
    /// [`RefreshError::InvalidResponse`] for a 200 that is not JSON, and
    /// [`RefreshError::Transport`] when the request fails.
    pub async fn refresh_authentication(&self) -> Result<Option<Duration>, RefreshError> {
        if self.state() != ConnectionState::Connected {
            return Err(RefreshError::NotConnected);
        }
        let (reply, refreshed) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Refresh(reply))
            .map_err(|_| RefreshError::NotConnected)?;
        refreshed.await.unwrap_or(Err(RefreshError::NotConnected))
    }

    /// Registers a handler for the client method `target` (matched without regard to
    /// case). Handlers stay registered across reconnects. A handler returning a `Result`
    /// answers client results. Calls run one at a time, in the order they arrive.
    pub fn on<A, F, Fut>(&self, target: &str, handler: F)
    where
        A: FromArguments + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerReply,
    {
        let _ = self.shared.dispatch.send(DispatchItem::On(
            target.to_lowercase(),
            dispatch::typed(handler),
        ));
    }

    /// [`on`](Self::on), with the call's message headers (string to string) as the
    /// handler's first argument: what the server's outgoing filters added, a
    /// `traceparent`.
    pub fn on_with_headers<A, F, Fut>(&self, target: &str, handler: F)
    where
        A: FromArguments + Send + 'static,
        F: Fn(hubs_protocol::Headers, A) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerReply,
    {
        let _ = self.shared.dispatch.send(DispatchItem::On(
            target.to_lowercase(),
            dispatch::with_headers(handler),
        ));
    }

    /// Removes the handlers of `target`.
    pub fn off(&self, target: &str) {
        let _ = self
            .shared
            .dispatch
            .send(DispatchItem::Off(target.to_lowercase()));
    }

    fn next_id(&self) -> String {
        self.shared
            .next_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }

    fn encode(&self, message: &HubMessage) -> Result<Bytes, InvokeError> {
        let mut bytes = Vec::new();
        self.shared
            .config
            .protocol
            .encode(message, &mut bytes)
            .map_err(|e| InvokeError::Encode(e.to_string()))?;
        Ok(bytes.into())
    }

    /// Hands an encoded message to the supervisor and waits until it is on its way (or
    /// refused).
    async fn submit(&self, bytes: Bytes, call: Call) -> Result<(), InvokeError> {
        let (sent, on_its_way) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Send {
                bytes,
                call,
                sent: Some(sent),
            })
            .map_err(|_| InvokeError::NotConnected)?;
        on_its_way.await.unwrap_or(Err(InvokeError::NotConnected))
    }

    fn start_uploads(&self, ids: Vec<String>, uploads: Vec<Upload>) {
        for (id, upload) in ids.into_iter().zip(uploads) {
            tokio::spawn(stream::run_upload(
                self.shared.commands.downgrade(),
                self.shared.config.protocol,
                id,
                upload,
            ));
        }
    }

    /// Calls a hub method and waits for its result.
    ///
    /// # Errors
    ///
    /// The server's error text ([`InvokeError::Server`]), a closed connection, or a
    /// result of another shape.
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Arguments,
    ) -> Result<T, InvokeError> {
        self.invoke_with_uploads(method, arguments, Vec::new())
            .await
    }

    /// Calls a hub method with upload streams (its `UploadStream` parameters, in order).
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke).
    pub async fn invoke_with_uploads<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Arguments,
        uploads: Vec<Upload>,
    ) -> Result<T, InvokeError> {
        let span = call_span(method);
        let headers = span.in_scope(hubs_protocol::trace_context::current);
        async {
            let protocol = self.shared.config.protocol;
            let id = self.next_id();
            let stream_ids: Vec<String> = uploads.iter().map(|_| self.next_id()).collect();
            let bytes = self.encode(&HubMessage::Invocation(Invocation {
                headers,
                invocation_id: Some(id.clone()),
                target: method.to_owned(),
                arguments: arguments
                    .to_values(protocol)
                    .map_err(|e| InvokeError::Encode(e.to_string()))?,
                stream_ids: stream_ids.clone(),
            }))?;
            let (reply, result) = oneshot::channel();
            self.submit(bytes, Call::Invoke(id, reply)).await?;
            self.start_uploads(stream_ids, uploads);
            let outcome = result.await.unwrap_or_else(|_| {
                Err(InvokeError::Closed(
                    wire::INVOCATION_CANCELED_CLOSED.to_owned(),
                ))
            })?;
            match outcome {
                Outcome::Error(error) => Err(InvokeError::Server(error)),
                Outcome::Result(value) => value.deserialize().map_err(InvokeError::Bind),
                Outcome::Void => Value::null(Protocol::Json)
                    .deserialize()
                    .map_err(InvokeError::Bind),
            }
        }
        .instrument(span)
        .await
    }

    /// Calls a hub method without waiting for it (`SendAsync`): returns once the message
    /// is on its way.
    ///
    /// # Errors
    ///
    /// When the connection is not connected or the arguments cannot be encoded.
    pub async fn send(&self, method: &str, arguments: impl Arguments) -> Result<(), InvokeError> {
        let span = call_span(method);
        let headers = span.in_scope(hubs_protocol::trace_context::current);
        let bytes = self.encode(&HubMessage::Invocation(Invocation {
            headers,
            target: method.to_owned(),
            arguments: arguments
                .to_values(self.shared.config.protocol)
                .map_err(|e| InvokeError::Encode(e.to_string()))?,
            ..Default::default()
        }))?;
        self.submit(bytes, Call::None).instrument(span).await
    }

    /// Calls a streaming hub method; items arrive as the returned stream yields them (they
    /// are buffered until read). Dropping the stream before its completion cancels it on the
    /// server.
    ///
    /// # Errors
    ///
    /// When the connection is not connected or the arguments cannot be encoded.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Arguments,
    ) -> Result<ClientStream<T>, InvokeError> {
        self.stream_with_uploads(method, arguments, Vec::new())
            .await
    }

    /// [`stream`](Self::stream) with upload streams.
    ///
    /// # Errors
    ///
    /// As [`stream`](Self::stream).
    pub async fn stream_with_uploads<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Arguments,
        uploads: Vec<Upload>,
    ) -> Result<ClientStream<T>, InvokeError> {
        let headers = call_span(method).in_scope(hubs_protocol::trace_context::current);
        let protocol = self.shared.config.protocol;
        let id = self.next_id();
        let stream_ids: Vec<String> = uploads.iter().map(|_| self.next_id()).collect();
        let bytes = self.encode(&HubMessage::StreamInvocation(StreamInvocation {
            headers,
            invocation_id: id.clone(),
            target: method.to_owned(),
            arguments: arguments
                .to_values(protocol)
                .map_err(|e| InvokeError::Encode(e.to_string()))?,
            stream_ids: stream_ids.clone(),
        }))?;
        let (items_tx, items) = mpsc::unbounded_channel();
        self.submit(bytes, Call::Stream(id.clone(), items_tx))
            .await?;
        self.start_uploads(stream_ids, uploads);
        Ok(ClientStream::new(
            items,
            id,
            self.shared.commands.downgrade(),
        ))
    }
}
