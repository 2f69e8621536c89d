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
mod builder;
mod error;
mod proxy;
mod retry;
mod session;
mod stream;
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
use hubs_core::{Arguments, HubError, TransportKind, wire};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use arguments::FromArguments;
pub use builder::HubConnectionBuilder;
pub use error::{InvokeError, StartError};
pub use proxy::{ProxyInvoke, ProxyStream, ReceiverHost};
pub use retry::{DefaultRetryPolicy, RetryPolicy};
pub use stream::{ClientStream, Upload};
use transport::{HttpClient, Link, Outgoing};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type TokenProvider = Arc<dyn Fn() -> BoxFuture<Option<String>> + Send + Sync>;

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
        self.inner.fail_all(wire::INVOCATION_CANCELED_CLOSED);
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
        let span = call_span(method);
        let headers = span.in_scope(hubs_core::trace_context::current);
        async {
            let id = self.inner.next_id();
            let (tx, rx) = oneshot::channel();
            lock(&self.inner.pending).insert(id.clone(), tx);
            let stream_ids = self.inner.upload_ids(&uploads);
            let sent = self
                .inner
                .send_message(|protocol| {
                    Ok(HubMessage::Invocation(Invocation {
                        headers: headers.clone(),
                        invocation_id: Some(id.clone()),
                        target: method.to_owned(),
                        arguments: arguments
                            .to_values(protocol)
                            .map_err(|e| InvokeError::Encode(e.to_string()))?,
                        stream_ids: stream_ids.clone(),
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

    /// Calls a hub method without waiting for it (`SendAsync`).
    ///
    /// # Errors
    ///
    /// When the connection is not connected or the arguments cannot be encoded.
    pub async fn send(&self, method: &str, arguments: impl Arguments) -> Result<(), InvokeError> {
        let span = call_span(method);
        let headers = span.in_scope(hubs_core::trace_context::current);
        self.inner
            .send_message(|protocol| {
                Ok(HubMessage::Invocation(Invocation {
                    headers: headers.clone(),
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
        let headers = call_span(method).in_scope(hubs_core::trace_context::current);
        let id = self.inner.next_id();
        let (tx, rx) = mpsc::channel(16);
        lock(&self.inner.streams).insert(id.clone(), tx);
        let stream_ids = self.inner.upload_ids(&uploads);
        let sent = self
            .inner
            .send_message(|protocol| {
                Ok(HubMessage::StreamInvocation(StreamInvocation {
                    headers: headers.clone(),
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
