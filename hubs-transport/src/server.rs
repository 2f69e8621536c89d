//! The server builder and the HTTP service that routes requests to hubs.

use std::any::TypeId;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Method, Request, Response, StatusCode, header};
use hubs_core::{
    ConnectionId, Hub, HubContext, HubEndpoint, HubOptions, HubRuntime, MissingServiceError,
    Services, TransportKind,
};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::body::{self, Body};
use crate::cors::Cors;
use crate::http_transport::{self, HttpConnection};
use crate::negotiate;
use crate::raw::{RawConnection, RawEndpoint};
use crate::registry::{Lookup, Registry};
use crate::websocket;

type Mounter =
    Box<dyn FnOnce(Arc<Services>) -> Result<Arc<dyn HubEndpoint>, MissingServiceError> + Send>;

/// Builds a hub server: hubs on paths, services for them, then [`serve`](Server::serve).
///
/// # Examples
///
/// ```no_run
/// # use hubs_core::{Hub, HubOptions};
/// # async fn f<H: Hub>(my_hub: H) -> std::io::Result<()> {
/// hubs_transport::Server::new()
///     .hub_with("/chat", my_hub, HubOptions::default().enable_detailed_errors(true))
///     .serve("127.0.0.1:5000")
///     .await
/// # }
/// ```
#[derive(Default)]
pub struct Server {
    services: Services,
    mounts: Vec<(String, Mounter)>,
    cors: Option<Cors>,
}

/// The server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A hub injects a service that is not registered.
    #[error(transparent)]
    MissingService(#[from] MissingServiceError),
    /// Two hubs are mounted on the same path.
    #[error("two hubs are mounted on `{0}`")]
    DuplicatePath(String),
}

impl From<BuildError> for io::Error {
    fn from(error: BuildError) -> Self {
        io::Error::other(error)
    }
}

impl Server {
    /// An empty server.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a service that hub methods can inject by type.
    #[must_use]
    pub fn service<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.services.insert(value);
        self
    }

    /// Registers a service that hub methods can inject by type and `key`.
    #[must_use]
    pub fn keyed_service<T: Send + Sync + 'static>(
        mut self,
        key: impl Into<String>,
        value: T,
    ) -> Self {
        self.services.insert_keyed(key, value);
        self
    }

    /// Lets browser pages from other origins connect (see [`Cors`]).
    #[must_use]
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = Some(cors);
        self
    }

    /// Mounts `hub` at `path` (matched without regard to case) with default options.
    #[must_use]
    pub fn hub<H: Hub>(self, path: &str, hub: H) -> Self {
        self.hub_with(path, hub, HubOptions::default())
    }

    /// Mounts `hub` at `path` with `options`.
    #[must_use]
    pub fn hub_with<H: Hub>(mut self, path: &str, hub: H, options: HubOptions) -> Self {
        self.mounts.push((
            normalize(path),
            Box::new(move |services| {
                HubRuntime::new(hub, options, services).map(|rt| rt as Arc<dyn HubEndpoint>)
            }),
        ));
        self
    }

    /// Mounts a raw connection handler at `path` with default options: negotiate and the
    /// three transports as for a hub, but no handshake and no hub protocol (ASP.NET Core's
    /// `MapConnectionHandler`). `handler` runs once per connection.
    ///
    /// # Examples
    ///
    /// An echo endpoint:
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// hubs_transport::Server::new()
    ///     .connection_handler("/echo", |mut connection| async move {
    ///         while let Some(message) = connection.recv().await {
    ///             if connection.send(message).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    ///     .serve("127.0.0.1:5000")
    ///     .await
    /// # }
    /// ```
    #[must_use]
    pub fn connection_handler<F, Fut>(self, path: &str, handler: F) -> Self
    where
        F: Fn(RawConnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.connection_handler_with(path, handler, HubOptions::default())
    }

    /// Mounts a raw connection handler at `path` with `options`; of those, the transports,
    /// the message size limit, the outgoing queue capacity, the send timeout and the
    /// long-poll timeout apply.
    #[must_use]
    pub fn connection_handler_with<F, Fut>(
        mut self,
        path: &str,
        handler: F,
        options: HubOptions,
    ) -> Self
    where
        F: Fn(RawConnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let endpoint = RawEndpoint::new(handler, options);
        self.mounts.push((
            normalize(path),
            Box::new(move |_| Ok(Arc::new(endpoint) as Arc<dyn HubEndpoint>)),
        ));
        self
    }

    /// Sets the hubs up: checks services and paths.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when a hub injects an unregistered service or two hubs share a path.
    pub fn build(self) -> Result<HubService, BuildError> {
        let services = Arc::new(self.services);
        let mut hubs: Vec<(String, Arc<dyn HubEndpoint>)> = Vec::new();
        for (path, mount) in self.mounts {
            if hubs.iter().any(|(p, _)| *p == path) {
                return Err(BuildError::DuplicatePath(path));
            }
            hubs.push((path, mount(services.clone())?));
        }
        Ok(HubService {
            inner: Arc::new(Inner {
                hubs,
                registry: Registry::default(),
                cors: self.cors,
            }),
        })
    }

    /// Builds the server and serves it on `addr` until an error stops the listener.
    ///
    /// # Errors
    ///
    /// Build errors and errors binding the address.
    pub async fn serve(self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let service = self.build()?;
        let listener = TcpListener::bind(addr).await?;
        service.serve(listener).await
    }
}

fn normalize(path: &str) -> String {
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

struct Inner {
    hubs: Vec<(String, Arc<dyn HubEndpoint>)>,
    registry: Registry,
    cors: Option<Cors>,
}

/// The built server as an HTTP service: serve it with [`HubService::serve`], or mount it
/// in a hyper or tower application (it implements `tower_service::Service`, so axum's
/// `Router::nest_service` and `fallback_service` take it). Cheap to clone.
#[derive(Clone)]
pub struct HubService {
    inner: Arc<Inner>,
}

impl HubService {
    /// The context of the first hub of type `H`, for use outside hub methods.
    pub fn hub_context<H: Hub>(&self) -> Option<HubContext<H>> {
        self.inner
            .hubs
            .iter()
            .find(|(_, endpoint)| endpoint.hub_type() == TypeId::of::<H>())
            .and_then(|(_, endpoint)| endpoint.clone().as_any().downcast::<HubRuntime<H>>().ok())
            .map(|runtime| runtime.context())
    }

    /// Ends every connection of every hub: each client gets a Close that allows it to
    /// reconnect, pending client results fail, and `on_disconnected` runs.
    pub fn shutdown(&self) {
        for (_, endpoint) in &self.inner.hubs {
            endpoint.shutdown();
        }
    }

    /// Serves `listener` until `signal` completes, then stops accepting and ends every
    /// connection (see [`shutdown`](Self::shutdown)).
    ///
    /// # Errors
    ///
    /// An error from `accept` that is not about one connection.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let stopper = self.clone();
        tokio::select! {
            served = self.serve(listener) => served,
            () = signal => {
                stopper.shutdown();
                Ok(())
            }
        }
    }

    /// Accepts connections on `listener` and serves them until accepting fails for good.
    ///
    /// # Errors
    ///
    /// An error from `accept` that is not about one connection.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) if is_per_connection(&error) => {
                    tracing::debug!(%error, "accept failed");
                    // Out of file descriptors and the like: give connections time to end.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let _ = stream.set_nodelay(true);
            let service = self.clone();
            tokio::spawn(async move { service.serve_connection(stream, peer).await });
        }
    }

    async fn serve_connection(self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let service = hyper::service::service_fn(move |request| {
            let service = self.clone();
            async move { Ok::<_, Infallible>(service.handle(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        if let Err(error) = connection.await {
            tracing::debug!(%peer, %error, "http connection ended with an error");
        }
    }

    fn find(&self, path: &str) -> Option<(usize, &Arc<dyn HubEndpoint>)> {
        let path = normalize(path);
        self.inner
            .hubs
            .iter()
            .enumerate()
            .find(|(_, (p, _))| *p == path)
            .map(|(i, (_, endpoint))| (i, endpoint))
    }

    /// Answers one HTTP request: negotiate, the three transports, and CORS.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(cors) = self.inner.cors.clone() else {
            return self.route(request).await;
        };
        if let Some(preflight) = cors.preflight(request.method(), request.headers()) {
            return preflight;
        }
        let headers = request.headers().clone();
        let mut response = self.route(request).await;
        cors.decorate(&headers, &mut response);
        response
    }

    async fn route<B>(&self, mut request: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_owned();
        let lower = path.trim_end_matches('/').to_ascii_lowercase();
        if let Some(hub_path) = lower.strip_suffix("/negotiate") {
            let Some((index, endpoint)) = self.find(hub_path) else {
                return body::text(StatusCode::NOT_FOUND, "");
            };
            if request.method() != Method::POST {
                return body::text(StatusCode::METHOD_NOT_ALLOWED, "");
            }
            if let Some(refused) = unauthorized(endpoint.options(), &request) {
                return refused;
            }
            return self.negotiate(index, endpoint, request.uri().query());
        }
        let Some((index, endpoint)) = self.find(&path) else {
            return body::text(StatusCode::NOT_FOUND, "");
        };
        if let Some(refused) = unauthorized(endpoint.options(), &request) {
            return refused;
        }
        let endpoint = endpoint.clone();
        let enabled = |kind: TransportKind| endpoint.options().enabled_transports().contains(&kind);
        let method = request.method().clone();
        let token = query_value(request.uri().query(), "id").map(str::to_owned);
        let (is_upgrade, wants_events) = {
            let header_has = |name: header::HeaderName, needle: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
            };
            (
                method == Method::GET && header_has(header::UPGRADE, "websocket"),
                method == Method::GET && header_has(header::ACCEPT, "text/event-stream"),
            )
        };
        let requested = if is_upgrade {
            TransportKind::WebSockets
        } else if wants_events {
            TransportKind::ServerSentEvents
        } else {
            TransportKind::LongPolling
        };

        // WebSockets may skip negotiation.
        let Some(token) = token else {
            if is_upgrade {
                if !enabled(TransportKind::WebSockets) {
                    return not_enabled(TransportKind::WebSockets);
                }
                return websocket::upgrade(&mut request, endpoint, ConnectionId::generate(), || {});
            }
            return body::text(StatusCode::BAD_REQUEST, "Connection ID required");
        };

        match self.inner.registry.lookup(&token, index) {
            Lookup::NotFound | Lookup::OtherHub => {
                body::text(StatusCode::NOT_FOUND, "No Connection with that ID")
            }
            Lookup::Ended if method == Method::GET && !is_upgrade && !wants_events => {
                body::text(StatusCode::NO_CONTENT, "")
            }
            Lookup::Ended => body::text(StatusCode::NOT_FOUND, "No Connection with that ID"),
            Lookup::Negotiated(connection_id) => {
                if method == Method::DELETE {
                    return body::text(
                        StatusCode::BAD_REQUEST,
                        "Cannot terminate this connection using the DELETE endpoint.",
                    );
                }
                if method != Method::GET {
                    return body::text(StatusCode::NOT_FOUND, "No Connection with that ID");
                }
                if !enabled(requested) {
                    return not_enabled(requested);
                }
                let registry = self.clone();
                let ended_token = token.clone();
                let on_end = move || registry.inner.registry.ended(&ended_token);
                if is_upgrade {
                    if !self.inner.registry.attach_websocket(&token) {
                        return body::text(StatusCode::CONFLICT, "");
                    }
                    return websocket::upgrade(&mut request, endpoint, connection_id, on_end);
                }
                let hub_request =
                    hubs_core::Request::new(request.uri().clone(), request.headers().clone());
                let connection =
                    HttpConnection::start(endpoint, connection_id, hub_request, requested, on_end);
                if !self.inner.registry.attach_http(&token, connection.clone()) {
                    return body::text(StatusCode::CONFLICT, "");
                }
                if wants_events {
                    connection.event_stream()
                } else {
                    http_transport::first_poll()
                }
            }
            found @ (Lookup::WebSocket | Lookup::Http(_)) => {
                let current = found.transport();
                match (&method, found) {
                    (&Method::POST, Lookup::Http(connection)) => {
                        connection.post(request.into_body()).await
                    }
                    (&Method::POST, _) => body::text(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "POST requests are not allowed for WebSocket connections.",
                    ),
                    (&Method::DELETE, Lookup::Http(connection))
                        if connection.transport() == TransportKind::LongPolling =>
                    {
                        connection.delete()
                    }
                    (&Method::DELETE, _) => body::text(
                        StatusCode::BAD_REQUEST,
                        "Cannot terminate this connection using the DELETE endpoint.",
                    ),
                    (&Method::GET, found) if current == Some(requested) => match found {
                        Lookup::Http(connection) if requested == TransportKind::LongPolling => {
                            let timeout = endpoint.options().configured_long_poll_timeout();
                            connection.poll(timeout).await
                        }
                        // A second WebSocket or event stream on a live connection.
                        _ => body::text(StatusCode::CONFLICT, ""),
                    },
                    (&Method::GET, _) => body::text(
                        StatusCode::BAD_REQUEST,
                        "Cannot change transports mid-connection",
                    ),
                    _ => body::text(StatusCode::METHOD_NOT_ALLOWED, ""),
                }
            }
        }
    }

    fn negotiate(
        &self,
        index: usize,
        endpoint: &Arc<dyn HubEndpoint>,
        query: Option<&str>,
    ) -> Response<Body> {
        let version = match negotiate::requested_version(query) {
            Ok(version) => version,
            Err(text) => return body::json(negotiate::error(&text)),
        };
        let connection_id = ConnectionId::generate();
        let token = if version >= 1 {
            ConnectionId::generate().to_string()
        } else {
            connection_id.to_string()
        };
        let response =
            negotiate::response(version, connection_id.as_str(), &token, endpoint.options());
        self.inner.registry.negotiated(token, connection_id, index);
        body::json(response)
    }
}

/// `401` with an empty body when the hub checks requests and this one fails.
fn unauthorized<B>(options: &HubOptions, request: &Request<B>) -> Option<Response<Body>> {
    if !options.requires_authorization() {
        return None;
    }
    let checked = hubs_core::Request::new(request.uri().clone(), request.headers().clone());
    (!options.authorizes(&checked)).then(|| body::text(StatusCode::UNAUTHORIZED, ""))
}

fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(23 | 24))
}

impl<B> tower_service::Service<Request<B>> for HubService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}

fn not_enabled(kind: TransportKind) -> Response<Body> {
    body::text(
        StatusCode::NOT_FOUND,
        match kind {
            TransportKind::WebSockets => {
                "WebSockets transport not supported by this end point type"
            }
            TransportKind::ServerSentEvents => {
                "ServerSentEvents transport not supported by this end point type"
            }
            TransportKind::LongPolling => {
                "LongPolling transport not supported by this end point type"
            }
        },
    )
}
