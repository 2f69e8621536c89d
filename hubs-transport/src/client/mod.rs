//! The Rust client: [`HubConnection`] calls hubs on any SignalR server (ours or ASP.NET
//! Core's) over WebSockets, Server-Sent Events or long polling, with the JSON or
//! MessagePack protocol, and reconnects automatically.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use hubs_transport::client::HubConnection;
//!
//! let connection = HubConnection::builder("http://127.0.0.1:5000/chat")
//!     .with_automatic_reconnect()
//!     .build();
//! connection.on("ReceiveMessage", |(user, text): (String, String)| async move {
//!     println!("{user}: {text}");
//! });
//! connection.start().await?;
//! connection.send("SendMessage", ("ann", "hello")).await?;
//! let sum: i64 = connection.invoke("Add", (1, 2)).await?;
//! # let _ = sum;
//! # Ok(()) }
//! ```

mod arguments;
mod retry;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use hubs_core::protocol::{
    CancelInvocation, Close, Completion, DecodeError, HandshakeRequest, HandshakeResponse,
    HubMessage, Invocation, Outcome, Protocol, StreamInvocation, StreamItem, TransferFormat, Value,
};
use hubs_core::{Arguments, HubError, TransportKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use arguments::FromArguments;
pub use retry::{DefaultRetryPolicy, RetryPolicy};
use transport::{HttpClient, Link, Outgoing};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type TokenProvider = Arc<dyn Fn() -> BoxFuture<Option<String>> + Send + Sync>;

/// A connection could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The URL is not an `http://` or `ws://` URL the client can use.
    #[error("invalid URL `{0}`")]
    Url(String),
    /// Negotiate failed (the text is the server's error, or the HTTP status).
    #[error("Failed to complete negotiation with the server: {0}")]
    Negotiate(String),
    /// No transport could be opened.
    #[error("Unable to connect to the server with any of the available transports. {0}")]
    Transport(String),
    /// The server refused the handshake.
    #[error("Server returned handshake error: {0}")]
    Handshake(String),
    /// The connection is not in the state the call needs.
    #[error("Cannot start a connection that is not in the 'Disconnected' state.")]
    State,
}

/// A call to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The server's error text, as it sent it.
    #[error("{0}")]
    Server(String),
    /// The connection is not connected.
    #[error("Cannot send data if the connection is not in the 'Connected' State.")]
    NotConnected,
    /// The connection closed before the result arrived.
    #[error("{0}")]
    Closed(String),
    /// The arguments could not be encoded.
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    /// The result did not have the expected shape.
    #[error("cannot bind the result: {0}")]
    Bind(#[source] DecodeError),
}

/// The state of a [`HubConnection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected (not started, stopped, or given up).
    Disconnected,
    /// Starting.
    Connecting,
    /// Connected.
    Connected,
    /// Lost, trying to reconnect.
    Reconnecting,
}

/// Something that happened to a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Lost; reconnecting (with the reason).
    Reconnecting(Option<String>),
    /// Reconnected, with the new connection id.
    Reconnected(Option<String>),
    /// Closed for good (with the reason, if it was not a clean stop).
    Closed(Option<String>),
}

/// Builds a [`HubConnection`].
pub struct HubConnectionBuilder {
    url: String,
    transports: Vec<TransportKind>,
    protocol: Protocol,
    headers: HeaderMap,
    access_token: Option<TokenProvider>,
    skip_negotiation: bool,
    keep_alive: Duration,
    server_timeout: Duration,
    handshake_timeout: Duration,
    retry: Option<Arc<dyn RetryPolicy>>,
}

impl HubConnectionBuilder {
    /// Which transports to try, in order (default: WebSockets, Server-Sent Events, long
    /// polling, as offered by the server).
    #[must_use]
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportKind>) -> Self {
        self.transports = transports.into_iter().collect();
        self
    }

    /// The hub protocol (default JSON).
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// A header sent on every request.
    ///
    /// # Panics
    ///
    /// When the name or value is not a valid HTTP header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("invalid header name {name}"));
        let value =
            HeaderValue::from_str(value).unwrap_or_else(|_| panic!("invalid header value {value}"));
        self.headers.insert(name, value);
        self
    }

    /// A bearer token, asked for before negotiate and each transport connection.
    #[must_use]
    pub fn access_token<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.access_token = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// Connects straight to the hub URL over WebSockets, without negotiating.
    #[must_use]
    pub fn skip_negotiation(mut self) -> Self {
        self.skip_negotiation = true;
        self.transports = vec![TransportKind::WebSockets];
        self
    }

    /// How often to ping when nothing else was sent (default 15 s).
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }

    /// How long the server may stay silent before the connection is considered lost
    /// (default 30 s).
    #[must_use]
    pub fn server_timeout(mut self, timeout: Duration) -> Self {
        self.server_timeout = timeout;
        self
    }

    /// How long the handshake may take (default 15 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Reconnects after 0, 2, 10 and 30 seconds, then gives up (the official default).
    #[must_use]
    pub fn with_automatic_reconnect(self) -> Self {
        self.with_retry_policy(DefaultRetryPolicy::default())
    }

    /// Reconnects as `policy` says.
    #[must_use]
    pub fn with_retry_policy(mut self, policy: impl RetryPolicy) -> Self {
        self.retry = Some(Arc::new(policy));
        self
    }

    /// The connection, not yet started.
    pub fn build(self) -> HubConnection {
        let (events, _) = broadcast::channel(32);
        HubConnection {
            inner: Arc::new(Inner {
                config: self,
                http: transport::http_client(),
                state: Mutex::new(ConnectionState::Disconnected),
                session: Mutex::new(None),
                handlers: RwLock::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                streams: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                events,
                stopping: AtomicBool::new(false),
            }),
        }
    }
}

type HandlerFuture = BoxFuture<Result<Option<Value>, String>>;
type Handler = Arc<dyn Fn(Vec<Value>, Protocol) -> HandlerFuture + Send + Sync>;

/// What a handler given to [`HubConnection::on`] may return: `()` (no result), or a
/// `Result<T, E>` (a client result: the value, or the error's text).
pub trait HandlerReply: Send + 'static {
    /// The value to send back, in `protocol`, if any.
    ///
    /// # Errors
    ///
    /// The error text to send back.
    fn into_reply(self, protocol: Protocol) -> Result<Option<Value>, String>;
}

impl HandlerReply for () {
    fn into_reply(self, _: Protocol) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

impl<T: Serialize + Send + 'static, E: fmt::Display + Send + 'static> HandlerReply
    for Result<T, E>
{
    fn into_reply(self, protocol: Protocol) -> Result<Option<Value>, String> {
        match self {
            Ok(value) => Value::serialize(protocol, &value)
                .map(Some)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        }
    }
}

struct Session {
    out: mpsc::Sender<Outgoing>,
    protocol: Protocol,
    stop: CancellationToken,
    connection_id: Option<String>,
    transport: TransportKind,
    wrote: Arc<AtomicBool>,
}

type StreamSender = mpsc::Sender<Result<Value, InvokeError>>;

struct Inner {
    config: HubConnectionBuilder,
    http: HttpClient,
    state: Mutex<ConnectionState>,
    session: Mutex<Option<Session>>,
    handlers: RwLock<HashMap<String, Vec<Handler>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Outcome, InvokeError>>>>,
    streams: Mutex<HashMap<String, StreamSender>>,
    next_id: AtomicU64,
    events: broadcast::Sender<ConnectionEvent>,
    stopping: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection to a hub. Cheap to clone; every clone is the same connection.
#[derive(Clone)]
pub struct HubConnection {
    inner: Arc<Inner>,
}

impl fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConnection")
            .field("url", &self.inner.config.url)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Why a session ended.
struct Ended {
    error: Option<String>,
    allow_reconnect: bool,
}

impl HubConnection {
    /// A builder for a connection to the hub at `url` (`http://host:port/path`).
    pub fn builder(url: impl Into<String>) -> HubConnectionBuilder {
        HubConnectionBuilder {
            url: url.into(),
            transports: vec![
                TransportKind::WebSockets,
                TransportKind::ServerSentEvents,
                TransportKind::LongPolling,
            ],
            protocol: Protocol::Json,
            headers: HeaderMap::new(),
            access_token: None,
            skip_negotiation: false,
            keep_alive: Duration::from_secs(15),
            server_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            retry: None,
        }
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        *lock(&self.inner.state)
    }

    /// The connection id the server gave (none before start, or with skip negotiation).
    pub fn connection_id(&self) -> Option<String> {
        lock(&self.inner.session)
            .as_ref()
            .and_then(|s| s.connection_id.clone())
    }

    /// The transport in use.
    pub fn transport(&self) -> Option<TransportKind> {
        lock(&self.inner.session).as_ref().map(|s| s.transport)
    }

    /// Events: reconnecting, reconnected, closed.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.events.subscribe()
    }

    /// Starts the connection: negotiate, transport, handshake.
    ///
    /// # Errors
    ///
    /// [`StartError`] when no transport connects, negotiate fails or the handshake is
    /// refused.
    pub async fn start(&self) -> Result<(), StartError> {
        {
            let mut state = lock(&self.inner.state);
            if *state != ConnectionState::Disconnected {
                return Err(StartError::State);
            }
            *state = ConnectionState::Connecting;
        }
        self.inner.stopping.store(false, Ordering::SeqCst);
        match self.inner.clone().connect().await {
            Ok(ended) => {
                *lock(&self.inner.state) = ConnectionState::Connected;
                tokio::spawn(self.inner.clone().supervise(ended));
                Ok(())
            }
            Err(error) => {
                *lock(&self.inner.state) = ConnectionState::Disconnected;
                Err(error)
            }
        }
    }

    /// Stops the connection: sends Close and closes the transport. Pending calls fail.
    pub async fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let session = lock(&self.inner.session).take();
        if let Some(session) = session {
            let mut out = Vec::new();
            if session
                .protocol
                .encode(&HubMessage::Close(Close::default()), &mut out)
                .is_ok()
            {
                let _ = session
                    .out
                    .send(Outgoing {
                        bytes: out.into(),
                        text: session.protocol == Protocol::Json,
                    })
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            session.stop.cancel();
        }
        self.inner
            .fail_all("Invocation canceled due to the underlying connection being closed.");
        let was = std::mem::replace(&mut *lock(&self.inner.state), ConnectionState::Disconnected);
        if was != ConnectionState::Disconnected {
            let _ = self.inner.events.send(ConnectionEvent::Closed(None));
        }
    }

    /// Registers a handler for the client method `target` (matched without regard to
    /// case). Handlers stay registered across reconnects. A handler returning a `Result`
    /// answers client results.
    pub fn on<A, F, Fut>(&self, target: &str, handler: F)
    where
        A: FromArguments + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerReply,
    {
        let handler = Arc::new(handler);
        let boxed: Handler = Arc::new(move |values: Vec<Value>, protocol: Protocol| {
            let handler = handler.clone();
            Box::pin(async move {
                let arguments = A::from_values(&values)
                    .map_err(|_| "Client failed to parse argument(s).".to_owned())?;
                handler(arguments).await.into_reply(protocol)
            }) as HandlerFuture
        });
        self.on_raw(target, boxed);
    }

    #[doc(hidden)]
    pub fn on_raw(&self, target: &str, handler: Handler) {
        let mut handlers = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        handlers
            .entry(target.to_lowercase())
            .or_default()
            .push(handler);
    }

    /// Removes the handlers of `target`.
    pub fn off(&self, target: &str) {
        let mut handlers = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        handlers.remove(&target.to_lowercase());
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
        let id = self.inner.next_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id.clone(), tx);
        let stream_ids = self.inner.upload_ids(&uploads);
        let sent = self
            .inner
            .send_message(|protocol| {
                Ok(HubMessage::Invocation(Invocation {
                    invocation_id: Some(id.clone()),
                    target: method.to_owned(),
                    arguments: arguments
                        .to_values(protocol)
                        .map_err(|e| InvokeError::Encode(e.to_string()))?,
                    stream_ids: stream_ids.clone(),
                    ..Default::default()
                }))
            })
            .await;
        if let Err(error) = sent {
            lock(&self.inner.pending).remove(&id);
            return Err(error);
        }
        self.inner.clone().start_uploads(stream_ids, uploads);
        let outcome = rx.await.unwrap_or_else(|_| {
            Err(InvokeError::Closed(
                "Invocation canceled due to the underlying connection being closed.".to_owned(),
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

    /// Calls a hub method without waiting for it (`SendAsync`).
    ///
    /// # Errors
    ///
    /// When the connection is not connected or the arguments cannot be encoded.
    pub async fn send(&self, method: &str, arguments: impl Arguments) -> Result<(), InvokeError> {
        self.inner
            .send_message(|protocol| {
                Ok(HubMessage::Invocation(Invocation {
                    target: method.to_owned(),
                    arguments: arguments
                        .to_values(protocol)
                        .map_err(|e| InvokeError::Encode(e.to_string()))?,
                    ..Default::default()
                }))
            })
            .await
    }

    /// Calls a streaming hub method; items arrive as the returned stream yields them.
    /// Dropping the stream before it ends cancels it on the server.
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
        let id = self.inner.next_id();
        let (tx, rx) = mpsc::channel(16);
        lock(&self.inner.streams).insert(id.clone(), tx);
        let stream_ids = self.inner.upload_ids(&uploads);
        let sent = self
            .inner
            .send_message(|protocol| {
                Ok(HubMessage::StreamInvocation(StreamInvocation {
                    headers: Default::default(),
                    invocation_id: id.clone(),
                    target: method.to_owned(),
                    arguments: arguments
                        .to_values(protocol)
                        .map_err(|e| InvokeError::Encode(e.to_string()))?,
                    stream_ids: stream_ids.clone(),
                }))
            })
            .await;
        if let Err(error) = sent {
            lock(&self.inner.streams).remove(&id);
            return Err(error);
        }
        self.inner.clone().start_uploads(stream_ids, uploads);
        Ok(ClientStream {
            rx,
            id,
            inner: Arc::downgrade(&self.inner),
            done: false,
            _item: std::marker::PhantomData,
        })
    }
}

/// A stream of items sent to the server with a call (an `UploadStream` on the hub side).
pub struct Upload {
    stream: Pin<Box<dyn Stream<Item = Box<dyn ErasedItem>> + Send>>,
}

trait ErasedItem: Send {
    fn encode(&self, protocol: Protocol) -> Result<Value, String>;
}

impl<T: Serialize + Send> ErasedItem for T {
    fn encode(&self, protocol: Protocol) -> Result<Value, String> {
        Value::serialize(protocol, self).map_err(|e| e.to_string())
    }
}

impl Upload {
    /// Uploads the items of `stream`.
    pub fn new<T, S>(stream: S) -> Self
    where
        T: Serialize + Send + 'static,
        S: Stream<Item = T> + Send + 'static,
    {
        Self {
            stream: Box::pin(stream.map(|item| Box::new(item) as Box<dyn ErasedItem>)),
        }
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload").finish_non_exhaustive()
    }
}

/// Items of a server-to-client stream. Dropping it before the end cancels the stream.
pub struct ClientStream<T> {
    rx: mpsc::Receiver<Result<Value, InvokeError>>,
    id: String,
    inner: std::sync::Weak<Inner>,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ClientStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Stream for ClientStream<T> {
    type Item = Result<T, InvokeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => {
                if item.is_err() {
                    self.done = true;
                }
                Poll::Ready(Some(
                    item.and_then(|value| value.deserialize().map_err(InvokeError::Bind)),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for ClientStream<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(inner) = self.inner.upgrade() {
            let removed = lock(&inner.streams).remove(&self.id).is_some();
            if removed {
                let id = self.id.clone();
                tokio::spawn(async move {
                    let _ = inner
                        .send_message(|_| {
                            Ok(HubMessage::CancelInvocation(CancelInvocation {
                                headers: Default::default(),
                                invocation_id: id.clone(),
                            }))
                        })
                        .await;
                });
            }
        }
    }
}

impl Inner {
    fn next_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    fn upload_ids(&self, uploads: &[Upload]) -> Vec<String> {
        uploads.iter().map(|_| self.next_id()).collect()
    }

    fn start_uploads(self: Arc<Self>, ids: Vec<String>, uploads: Vec<Upload>) {
        for (id, mut upload) in ids.into_iter().zip(uploads) {
            let inner = self.clone();
            tokio::spawn(async move {
                while let Some(item) = upload.stream.next().await {
                    let protocol = inner.config.protocol;
                    let encoded = match item.encode(protocol) {
                        Ok(value) => value,
                        Err(error) => {
                            tracing::debug!(%error, "cannot encode an upload item");
                            return;
                        }
                    };
                    drop(item);
                    let sent = inner
                        .send_message(|_| {
                            Ok(HubMessage::StreamItem(StreamItem {
                                headers: Default::default(),
                                invocation_id: id.clone(),
                                item: encoded,
                            }))
                        })
                        .await;
                    if sent.is_err() {
                        return;
                    }
                }
                let _ = inner
                    .send_message(|_| Ok(HubMessage::Completion(Completion::void(id.clone()))))
                    .await;
            });
        }
    }

    /// Encodes a message for the current session's protocol and queues it.
    async fn send_message(
        &self,
        build: impl FnOnce(Protocol) -> Result<HubMessage, InvokeError>,
    ) -> Result<(), InvokeError> {
        let (out, protocol, wrote) = {
            let session = lock(&self.session);
            let session = session.as_ref().ok_or(InvokeError::NotConnected)?;
            (session.out.clone(), session.protocol, session.wrote.clone())
        };
        let message = build(protocol)?;
        let mut bytes = Vec::new();
        protocol
            .encode(&message, &mut bytes)
            .map_err(|e| InvokeError::Encode(e.to_string()))?;
        out.send(Outgoing {
            bytes: bytes.into(),
            text: protocol.transfer_format() == TransferFormat::Text,
        })
        .await
        .map_err(|_| InvokeError::NotConnected)?;
        wrote.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn fail_all(&self, reason: &str) {
        for (_, waiting) in lock(&self.pending).drain() {
            let _ = waiting.send(Err(InvokeError::Closed(reason.to_owned())));
        }
        for (_, stream) in lock(&self.streams).drain() {
            let _ = stream.try_send(Err(InvokeError::Closed(reason.to_owned())));
        }
    }

    async fn headers(&self) -> HeaderMap {
        let mut headers = self.config.headers.clone();
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(
                header::USER_AGENT,
                HeaderValue::from_static(concat!(
                    "Microsoft SignalR/9.0 (",
                    env!("CARGO_PKG_VERSION"),
                    "; Unknown OS; Rust hubs; Unknown Runtime Version)"
                )),
            );
        }
        if let Some(provider) = &self.config.access_token
            && let Some(token) = provider().await
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    /// Negotiates, opens a transport and completes the handshake; then runs the session in
    /// the background. Returns a receiver that fires when the session ends.
    async fn connect(self: Arc<Self>) -> Result<oneshot::Receiver<Ended>, StartError> {
        let config = &self.config;
        let mut headers = self.headers().await;
        let protocol = config.protocol;
        let (url, token, connection_id, offered) = if config.skip_negotiation {
            (
                config.url.clone(),
                None,
                None,
                vec![(
                    TransportKind::WebSockets,
                    vec!["Text".to_owned(), "Binary".to_owned()],
                )],
            )
        } else {
            let negotiated = transport::negotiate(&self.http, &config.url, &headers).await?;
            if let Some(token) = &negotiated.access_token
                && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
            {
                headers.insert(header::AUTHORIZATION, value);
            }
            (
                negotiated.url,
                negotiated.token,
                negotiated.connection_id,
                negotiated.transports,
            )
        };
        let format = match protocol.transfer_format() {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        };
        let mut errors = Vec::new();
        let mut link = None;
        for kind in &config.transports {
            let Some((_, formats)) = offered.iter().find(|(k, _)| k == kind) else {
                continue;
            };
            if !formats.iter().any(|f| f == format) {
                errors.push(format!(
                    "{} does not support the {format} transfer format.",
                    kind.name()
                ));
                continue;
            }
            match transport::connect(
                &self.http,
                *kind,
                &url,
                token.as_deref(),
                &headers,
                protocol == Protocol::MessagePack,
            )
            .await
            {
                Ok(opened) => {
                    link = Some(opened);
                    break;
                }
                Err(error) => errors.push(format!("{}: {error}", kind.name())),
            }
        }
        let Some(mut link) = link else {
            return Err(StartError::Transport(if errors.is_empty() {
                "None of the transports is offered by the server.".to_owned()
            } else {
                errors.join(" ")
            }));
        };

        // The handshake, always JSON text.
        let mut handshake = Vec::new();
        HandshakeRequest::new(protocol.name(), 1).encode(&mut handshake);
        let _ = link
            .out
            .send(Outgoing {
                bytes: handshake.into(),
                text: true,
            })
            .await;
        let mut buffer = BytesMut::new();
        let deadline = tokio::time::sleep(config.handshake_timeout);
        tokio::pin!(deadline);
        loop {
            match HandshakeResponse::decode(&mut buffer, None) {
                Ok(Some(response)) => {
                    if let Some(error) = response.error {
                        link.stop.cancel();
                        return Err(StartError::Handshake(error));
                    }
                    break;
                }
                Ok(None) => {}
                Err(error) => {
                    link.stop.cancel();
                    return Err(StartError::Handshake(error.to_string()));
                }
            }
            tokio::select! {
                chunk = link.incoming.recv() => match chunk {
                    Some(chunk) => buffer.extend_from_slice(&chunk),
                    None => return Err(StartError::Handshake("the server closed the connection during the handshake".to_owned())),
                },
                () = &mut deadline => {
                    link.stop.cancel();
                    return Err(StartError::Handshake("the handshake timed out".to_owned()));
                }
            }
        }

        // The official clients ping right after the handshake, before `start` returns
        // (not on long polling).
        if link.transport != TransportKind::LongPolling {
            let mut ping = Vec::new();
            if protocol.encode(&HubMessage::Ping, &mut ping).is_ok() {
                let _ = link
                    .out
                    .send(Outgoing {
                        bytes: ping.into(),
                        text: protocol.transfer_format() == TransferFormat::Text,
                    })
                    .await;
            }
        }
        let wrote = Arc::new(AtomicBool::new(false));
        *lock(&self.session) = Some(Session {
            out: link.out.clone(),
            protocol,
            stop: link.stop.clone(),
            connection_id,
            transport: link.transport,
            wrote: wrote.clone(),
        });
        let (ended_tx, ended_rx) = oneshot::channel();
        tokio::spawn(self.clone().run(link, buffer.freeze(), wrote, ended_tx));
        Ok(ended_rx)
    }

    /// Reads messages until the session ends.
    async fn run(
        self: Arc<Self>,
        mut link: Link,
        leftover: Bytes,
        wrote: Arc<AtomicBool>,
        ended: oneshot::Sender<Ended>,
    ) {
        let protocol = self.config.protocol;
        let mut decoder = protocol.decoder().with_max_message_size(None);
        decoder.push(&leftover);
        let pings = link.transport != TransportKind::LongPolling;
        let mut last_received = Instant::now();
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis(250).min(self.config.keep_alive));
        let mut last_ping = Instant::now();
        let result = 'session: loop {
            loop {
                let message = match decoder.next_message() {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(DecodeError::UnknownMessageType(_)) => continue,
                    Err(error) => {
                        break 'session Ended {
                            error: Some(format!("invalid message from the server: {error}")),
                            allow_reconnect: true,
                        };
                    }
                };
                if let Some(end) = self.handle(message, protocol).await {
                    link.stop.cancel();
                    let _ = ended.send(end);
                    return;
                }
            }
            tokio::select! {
                // Data first: a Close that arrived just before the transport ended must be
                // read, or its error and reconnect flag would be lost.
                biased;
                chunk = link.incoming.recv() => match chunk {
                    Some(chunk) => {
                        last_received = Instant::now();
                        decoder.push(&chunk);
                    }
                    None => break Ended { error: None, allow_reconnect: true },
                },
                () = link.stop.cancelled() => {
                    let mut drained = false;
                    while let Ok(chunk) = link.incoming.try_recv() {
                        decoder.push(&chunk);
                        drained = true;
                    }
                    if !drained {
                        break Ended { error: None, allow_reconnect: true };
                    }
                }
                _ = heartbeat.tick(), if pings => {
                    if last_received.elapsed() > self.config.server_timeout {
                        break Ended {
                            error: Some("Server timeout elapsed without receiving a message from the server.".to_owned()),
                            allow_reconnect: true,
                        };
                    }
                    if last_ping.elapsed() >= self.config.keep_alive {
                        last_ping = Instant::now();
                        if !wrote.swap(false, Ordering::Relaxed) {
                            let _ = self.send_message(|_| Ok(HubMessage::Ping)).await;
                            wrote.store(false, Ordering::Relaxed);
                        }
                    }
                }
            }
        };
        link.stop.cancel();
        let _ = ended.send(result);
    }

    /// Handles one message; `Some` ends the session.
    async fn handle(self: &Arc<Self>, message: HubMessage, protocol: Protocol) -> Option<Ended> {
        match message {
            HubMessage::Completion(completion) => {
                if let Some(waiting) = lock(&self.pending).remove(&completion.invocation_id) {
                    let _ = waiting.send(Ok(completion.outcome));
                } else if let Some(stream) = lock(&self.streams).remove(&completion.invocation_id)
                    && let Outcome::Error(error) = completion.outcome
                {
                    let _ = stream.try_send(Err(InvokeError::Server(error)));
                }
            }
            HubMessage::StreamItem(item) => {
                let stream = lock(&self.streams).get(&item.invocation_id).cloned();
                if let Some(stream) = stream {
                    let _ = stream.send(Ok(item.item)).await;
                }
            }
            HubMessage::Invocation(invocation) => {
                let handlers = self
                    .handlers
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&invocation.target.to_lowercase())
                    .cloned()
                    .unwrap_or_default();
                let inner = self.clone();
                tokio::spawn(async move {
                    let mut replies = Vec::new();
                    for handler in &handlers {
                        replies.push(handler(invocation.arguments.clone(), protocol).await);
                    }
                    let Some(id) = invocation.invocation_id else {
                        return;
                    };
                    let mut values = replies.into_iter().filter(|r| !matches!(r, Ok(None)));
                    let outcome = match (values.next(), values.next()) {
                        (Some(_), Some(_)) => {
                            Outcome::Error("Client provided multiple results.".to_owned())
                        }
                        (Some(Ok(Some(value))), None) => Outcome::Result(value),
                        (Some(Err(error)), None) => Outcome::Error(error),
                        _ => Outcome::Error("Client didn't provide a result.".to_owned()),
                    };
                    let _ = inner
                        .send_message(|_| {
                            Ok(HubMessage::Completion(Completion {
                                headers: Default::default(),
                                invocation_id: id.clone(),
                                outcome,
                            }))
                        })
                        .await;
                });
            }
            HubMessage::Close(close) => {
                return Some(Ended {
                    error: close.error,
                    allow_reconnect: close.allow_reconnect,
                });
            }
            _ => {}
        }
        None
    }

    /// Waits for a session to end, then reconnects or closes.
    async fn supervise(self: Arc<Self>, mut ended: oneshot::Receiver<Ended>) {
        loop {
            let end = (&mut ended).await.unwrap_or(Ended {
                error: None,
                allow_reconnect: false,
            });
            lock(&self.session).take();
            let reason = end.error.clone();
            let failure = match &reason {
                Some(error) => format!("Server returned an error on close: {error}"),
                None => {
                    "Invocation canceled due to the underlying connection being closed.".to_owned()
                }
            };
            self.fail_all(&failure);
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Some(policy) = self.config.retry.clone().filter(|_| end.allow_reconnect) else {
                *lock(&self.state) = ConnectionState::Disconnected;
                let _ = self.events.send(ConnectionEvent::Closed(reason));
                return;
            };
            *lock(&self.state) = ConnectionState::Reconnecting;
            let _ = self
                .events
                .send(ConnectionEvent::Reconnecting(reason.clone()));
            let lost = Instant::now();
            let mut retries = 0;
            let reconnected = loop {
                let Some(delay) = policy.next_delay(retries, lost.elapsed()) else {
                    break None;
                };
                tokio::time::sleep(delay).await;
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                match self.clone().connect().await {
                    Ok(next) => break Some(next),
                    Err(error) => tracing::debug!(%error, retries, "reconnect attempt failed"),
                }
                retries += 1;
            };
            match reconnected {
                Some(next) => {
                    ended = next;
                    *lock(&self.state) = ConnectionState::Connected;
                    let id = lock(&self.session)
                        .as_ref()
                        .and_then(|s| s.connection_id.clone());
                    let _ = self.events.send(ConnectionEvent::Reconnected(id));
                }
                None => {
                    *lock(&self.state) = ConnectionState::Disconnected;
                    let _ = self.events.send(ConnectionEvent::Closed(reason));
                    return;
                }
            }
        }
    }
}

impl From<InvokeError> for HubError {
    fn from(error: InvokeError) -> Self {
        HubError::new(error.to_string())
    }
}

/// Calls a hub method and binds its result; what typed hub proxies (generated by
/// `#[hub]`) call. The bounds live on the trait so that a proxy method compiles whatever
/// the hub's types, and is checked where it is used.
pub trait ProxyInvoke<A, T> {
    /// Invokes `method` with `arguments` and `uploads`.
    fn proxy_invoke(
        &self,
        method: &'static str,
        arguments: A,
        uploads: Vec<Upload>,
    ) -> impl Future<Output = Result<T, InvokeError>> + Send;
}

impl<A, T> ProxyInvoke<A, T> for HubConnection
where
    A: Arguments + Send,
    T: DeserializeOwned,
{
    fn proxy_invoke(
        &self,
        method: &'static str,
        arguments: A,
        uploads: Vec<Upload>,
    ) -> impl Future<Output = Result<T, InvokeError>> + Send {
        self.invoke_with_uploads(method, arguments, uploads)
    }
}

/// Calls a streaming hub method; what typed hub proxies call for streaming methods.
pub trait ProxyStream<A, T> {
    /// Starts the stream of `method`.
    fn proxy_stream(
        &self,
        method: &'static str,
        arguments: A,
        uploads: Vec<Upload>,
    ) -> impl Future<Output = Result<ClientStream<T>, InvokeError>> + Send;
}

impl<A, T> ProxyStream<A, T> for HubConnection
where
    A: Arguments + Send,
    T: DeserializeOwned,
{
    fn proxy_stream(
        &self,
        method: &'static str,
        arguments: A,
        uploads: Vec<Upload>,
    ) -> impl Future<Output = Result<ClientStream<T>, InvokeError>> + Send {
        self.stream_with_uploads(method, arguments, uploads)
    }
}

/// Registers a typed handler; what `{Trait}Receiver::register` (generated by `#[client]`)
/// calls. The bounds live on the trait so that the receiver compiles whatever the trait's
/// types are, and is checked where it is used.
pub trait ReceiverHost<A, R> {
    /// Registers `handler` for `target`.
    fn register_handler<F, Fut>(&self, target: &'static str, handler: F)
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static;
}

impl<A, R> ReceiverHost<A, R> for HubConnection
where
    A: FromArguments + Send + 'static,
    R: HandlerReply,
{
    fn register_handler<F, Fut>(&self, target: &'static str, handler: F)
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        self.on(target, handler);
    }
}
