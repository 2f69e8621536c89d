//! Testing hubs without TCP: [`TestServer`] builds a [`Server`] and connects Rust clients
//! to its hubs in the same process. The real connection core and dispatcher run over an
//! in-memory pair of queues, with either protocol, so a test calls methods through the
//! typed `{Hub}Connection`, receives calls through handlers or a `{Trait}Receiver`, answers
//! client results with closures, streams both ways, and puts clients in groups, as a real
//! client would. There is no I/O, so tokio's paused clock (`start_paused = true`) drives
//! keep-alive, timeouts and any `sleep` in hub code.
//!
//! ```
//! use hubs::testing::TestServer;
//! use hubs::{Context, HubError, Server, hub};
//!
//! struct Chat;
//!
//! #[hub]
//! impl Chat {
//!     pub async fn send_message(&self, cx: &Context<Self>, text: String) -> Result<(), HubError> {
//!         cx.clients().all().send("ReceiveMessage", (text,)).await?;
//!         Ok(())
//!     }
//!
//!     pub fn add(&self, a: i32, b: i32) -> i32 {
//!         a + b
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = TestServer::new(Server::new().hub("/chat", Chat)).unwrap();
//! let ann = server.client("/chat").build();
//! let (seen, mut messages) = tokio::sync::mpsc::unbounded_channel();
//! ann.on("ReceiveMessage", move |(text,): (String,)| {
//!     let seen = seen.clone();
//!     async move { let _ = seen.send(text); }
//! });
//! ann.start().await.unwrap();
//!
//! // Typed calls through the proxy `#[hub]` generated.
//! assert_eq!(ChatConnection::new(&ann).add(2, 3).await.unwrap(), 5);
//! ChatConnection::new(&ann).send_message("hi".into()).await.unwrap();
//! assert_eq!(messages.recv().await.as_deref(), Some("hi"));
//! ann.stop().await;
//! # }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use hubs_client::{Connector, Duplex, HubConnection, HubConnectionBuilder, StartError};
use hubs_core::{
    BoxFuture, Capabilities, Connected, ConnectionId, Hub, HubContext, HubEndpoint, Request,
    TransportConnection, TransportKind, User,
};
use tokio::sync::mpsc;

use crate::{BuildError, HubService, Server};

/// A built server whose hubs Rust clients reach in the same process.
#[derive(Clone)]
pub struct TestServer {
    service: HubService,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").finish_non_exhaustive()
    }
}

impl TestServer {
    /// Builds `server` (its hubs, services, filters, policies).
    ///
    /// # Errors
    ///
    /// As [`Server::build`].
    pub fn new(server: Server) -> Result<Self, BuildError> {
        Ok(Self {
            service: server.build()?,
        })
    }

    /// A client builder for the hub at `path` (set the protocol, handlers, keep-alive on
    /// it, then `build`). Anonymous; see [`client_as`](Self::client_as).
    ///
    /// # Panics
    ///
    /// When nothing is mounted at `path`.
    pub fn client(&self, path: &str) -> HubConnectionBuilder {
        self.client_with(path, Request::default())
    }

    /// A client builder for the hub at `path`, authenticated as `user` (the connection's
    /// [`Context::user`](crate::Context::user), and its user id by default).
    ///
    /// # Panics
    ///
    /// When nothing is mounted at `path`.
    pub fn client_as(&self, path: &str, user: User) -> HubConnectionBuilder {
        self.client_with(path, Request::default().with_user(Some(Arc::new(user))))
    }

    /// A client builder whose connections carry `request` (its query, headers and user),
    /// as if it had opened the transport.
    ///
    /// # Panics
    ///
    /// When nothing is mounted at `path`.
    pub fn client_with(&self, path: &str, request: Request) -> HubConnectionBuilder {
        let endpoint = self
            .service
            .endpoint(path)
            .unwrap_or_else(|| panic!("no hub is mounted at {path}"));
        HubConnection::builder(format!("in-process:{path}"))
            .connector(InProcess { endpoint, request })
    }

    /// A frame-level link to the hub at `path`, carrying `request`: the bytes a
    /// WebSocket would carry, with no client in between, for tests of the wire itself
    /// (send a handshake first). Ending the link (dropping it) is the transport going
    /// away.
    ///
    /// ```
    /// use hubs::testing::TestServer;
    /// use hubs::{Server, hub};
    ///
    /// struct Echo;
    ///
    /// #[hub]
    /// impl Echo {
    ///     pub fn echo(&self, text: String) -> String {
    ///         text
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::new(Server::new().hub("/echo", Echo)).unwrap();
    /// let mut link = server.raw("/echo", Default::default());
    /// link.send(&b"{\"protocol\":\"json\",\"version\":1}\x1e"[..]).await.unwrap();
    /// assert_eq!(link.recv().await.as_deref(), Some(&b"{}\x1e"[..]));
    /// link.send(&b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"hi\"]}\x1e"[..])
    ///     .await
    ///     .unwrap();
    /// assert_eq!(
    ///     link.recv().await.as_deref(),
    ///     Some(&b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"hi\"}\x1e"[..])
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When nothing is mounted at `path`.
    pub fn raw(&self, path: &str, request: Request) -> RawLink {
        let endpoint = self
            .service
            .endpoint(path)
            .unwrap_or_else(|| panic!("no hub is mounted at {path}"));
        link(&endpoint, request)
    }

    /// The hub context of hub type `H`, to send to clients from the test.
    pub fn hub_context<H: Hub>(&self) -> Option<HubContext<H>> {
        self.service.hub_context::<H>()
    }

    /// The built service (to serve it over TCP as well, for instance).
    pub fn service(&self) -> &HubService {
        &self.service
    }
}

/// A frame-level link to a hub in the same process, from [`TestServer::raw`].
#[derive(Debug)]
pub struct RawLink {
    to_server: mpsc::Sender<Bytes>,
    from_server: mpsc::Receiver<Bytes>,
    connection_id: ConnectionId,
}

/// The hub's side of a [`RawLink`] is gone: the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkClosed;

impl std::fmt::Display for LinkClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection ended")
    }
}

impl std::error::Error for LinkClosed {}

impl RawLink {
    /// The connection's id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection_id
    }

    /// Sends bytes to the hub, as one transport frame.
    ///
    /// # Errors
    ///
    /// When the connection has ended.
    pub async fn send(&self, bytes: impl Into<Bytes>) -> Result<(), LinkClosed> {
        self.to_server
            .send(bytes.into())
            .await
            .map_err(|_| LinkClosed)
    }

    /// The next frame the hub sent; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.from_server.recv().await
    }

    /// Splits the link into its two directions (the sender may be cloned).
    pub fn split(self) -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        (self.to_server, self.from_server)
    }
}

/// Connects a new connection to `endpoint` over a pair of queues.
fn link(endpoint: &Arc<dyn HubEndpoint>, request: Request) -> RawLink {
    let (to_server, mut from_client) = mpsc::channel::<Bytes>(64);
    let (to_client, from_server) = mpsc::channel::<Bytes>(64);
    let connection_id = ConnectionId::generate();
    let incoming = futures_util::stream::poll_fn(move |cx| {
        from_client.poll_recv(cx).map(|bytes| bytes.map(Ok))
    });
    let Connected {
        mut outgoing,
        closed,
        close_handle,
        task,
    } = endpoint.clone().connect(TransportConnection {
        connection_id: connection_id.clone(),
        request,
        transport: TransportKind::WebSockets,
        capabilities: Capabilities::new(true, true),
        incoming: Box::pin(incoming),
    });
    tokio::spawn(task);
    tokio::spawn(async move {
        let on_closed = closed.cancelled();
        tokio::pin!(on_closed);
        loop {
            tokio::select! {
                biased;
                frame = outgoing.recv() => match frame {
                    Some(frame) => {
                        if to_client.send(frame.bytes).await.is_err() {
                            close_handle.transport_lost("the test client went away");
                            return;
                        }
                    }
                    None => return,
                },
                () = &mut on_closed => {
                    while let Ok(frame) = outgoing.try_recv() {
                        let _ = to_client.send(frame.bytes).await;
                    }
                    // Dropping `to_client` ends the client's side.
                    return;
                }
            }
        }
    });
    RawLink {
        to_server,
        from_server,
        connection_id,
    }
}

/// Connects a client to an endpoint in the same process.
struct InProcess {
    endpoint: Arc<dyn HubEndpoint>,
    request: Request,
}

impl Connector for InProcess {
    fn open(&self) -> BoxFuture<Result<Duplex, StartError>> {
        let link = link(&self.endpoint, self.request.clone());
        let connection_id = Some(link.connection_id.to_string());
        let (to_server, from_server) = link.split();
        Box::pin(std::future::ready(Ok(Duplex {
            to_server,
            from_server,
            connection_id,
        })))
    }
}

/// One message a hub sent, as [`Recording`] saw it: to whom, which client method, and
/// the arguments as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// The recipients, as the hub chose them.
    pub to: crate::routing::Selection,
    /// The client method called.
    pub target: String,
    /// The arguments, as JSON.
    pub arguments: Vec<serde_json::Value>,
    /// Whether the hub waited for a result (a client result).
    pub client_result: bool,
}

/// A lifetime manager that records what hubs send, and delivers it as the in-memory one
/// does: give it to a hub with `HubOptions::lifetime_manager(recording.manager())` and
/// assert what a method sent to whom.
///
/// ```
/// use hubs::testing::{Recording, TestServer};
/// use hubs::routing::Selection;
/// use hubs::{Context, HubError, HubOptions, Server, hub};
///
/// struct Room;
///
/// #[hub]
/// impl Room {
///     pub async fn shout(&self, cx: &Context<Self>, text: String) -> Result<(), HubError> {
///         cx.clients().group("lobby").send("Heard", (text,)).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let recording = Recording::default();
/// let options = HubOptions::default().lifetime_manager(recording.manager());
/// let server = TestServer::new(Server::new().hub_with("/room", Room, options)).unwrap();
/// let client = server.client("/room").build();
/// client.start().await.unwrap();
/// client.invoke::<()>("Shout", ("hey",)).await.unwrap();
/// let sent = recording.take();
/// assert_eq!(sent[0].to, Selection::Group("lobby".into()));
/// assert_eq!((sent[0].target.as_str(), &sent[0].arguments[..]), ("Heard", &[serde_json::json!("hey")][..]));
/// client.stop().await;
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Recording {
    inner: Arc<Recorder>,
}

#[derive(Default)]
struct Recorder {
    routing: hubs_core::InMemoryLifetimeManager,
    sent: std::sync::Mutex<Vec<Sent>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("sent", &self.sent().len())
            .finish()
    }
}

impl Recording {
    /// The lifetime manager to give a hub.
    pub fn manager(&self) -> Arc<dyn hubs_core::LifetimeManager> {
        self.inner.clone()
    }

    /// What was sent so far, oldest first.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What was sent so far, forgetting it.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.inner.sent.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn json_arguments(values: &[hubs_core::protocol::Value]) -> Vec<serde_json::Value> {
    values
        .iter()
        .map(|value| value.deserialize().unwrap_or(serde_json::Value::Null))
        .collect()
}

impl Recorder {
    fn record(&self, sent: Sent) {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sent);
    }

    fn record_message(
        &self,
        to: &crate::routing::Selection,
        message: &crate::routing::SerializedMessage<'_>,
    ) {
        let Ok(bytes) = message.bytes(hubs_core::protocol::Protocol::Json) else {
            return;
        };
        let mut decoder = hubs_core::protocol::Protocol::Json.decoder();
        decoder.push(&bytes);
        if let Ok(Some(hubs_core::protocol::HubMessage::Invocation(invocation))) =
            decoder.next_message()
        {
            self.record(Sent {
                to: to.clone(),
                target: invocation.target,
                arguments: json_arguments(&invocation.arguments),
                client_result: false,
            });
        }
    }
}

#[async_trait::async_trait]
impl hubs_core::LifetimeManager for Recorder {
    async fn on_connected(&self, connection: Arc<hubs_core::ConnectionHandle>) {
        hubs_core::LifetimeManager::on_connected(&self.routing, connection).await;
    }

    async fn on_disconnected(&self, connection: &hubs_core::ConnectionHandle) {
        hubs_core::LifetimeManager::on_disconnected(&self.routing, connection).await;
    }

    async fn send(
        &self,
        selection: &crate::routing::Selection,
        message: &crate::routing::SerializedMessage<'_>,
    ) -> Result<(), crate::SendError> {
        self.record_message(selection, message);
        hubs_core::LifetimeManager::send(&self.routing, selection, message).await
    }

    async fn add_to_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), crate::SendError> {
        hubs_core::LifetimeManager::add_to_group(&self.routing, connection, group).await
    }

    async fn remove_from_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), crate::SendError> {
        hubs_core::LifetimeManager::remove_from_group(&self.routing, connection, group).await
    }

    fn connection(&self, id: &ConnectionId) -> Option<Arc<hubs_core::ConnectionHandle>> {
        hubs_core::LifetimeManager::connection(&self.routing, id)
    }

    async fn connection_ids(&self, selection: &crate::routing::Selection) -> Vec<ConnectionId> {
        hubs_core::LifetimeManager::connection_ids(&self.routing, selection).await
    }

    async fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        hubs_core::LifetimeManager::groups_of(&self.routing, connection).await
    }

    async fn invoke(
        &self,
        connection: &ConnectionId,
        target: &str,
        arguments: &(dyn crate::protocol::Arguments + Send),
        timeout: std::time::Duration,
    ) -> Result<hubs_core::protocol::Outcome, hubs_core::ClientResultError> {
        let values = arguments
            .to_values(hubs_core::protocol::Protocol::Json)
            .unwrap_or_default();
        self.record(Sent {
            to: crate::routing::Selection::Connection(connection.clone()),
            target: target.to_owned(),
            arguments: json_arguments(&values),
            client_result: true,
        });
        hubs_core::LifetimeManager::invoke(&self.routing, connection, target, arguments, timeout)
            .await
    }
}
