//! The server builder and the HTTP service that routes requests to hubs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hubs_core::{
    Authenticator, Hub, HubEndpoint, HubFilter, HubOptions, HubRuntime, MissingServiceError,
    MountError, Policies, Policy, Services, UnknownPolicyError,
};
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::cors::Cors;
use crate::limits::ConnectionLimit;
use crate::listener::ServeOptions;
use crate::options::EndpointOptions;
use crate::raw::{RawConnection, RawEndpoint};
use crate::registry::Registry;
use crate::service::{HubService, Inner, Mounted, normalize};

/// What every hub of a server shares: services, filters and policies.
struct Shared {
    services: Arc<Services>,
    filters: Vec<Arc<dyn HubFilter>>,
    policies: Arc<Policies>,
}

type Mounter = Box<dyn FnOnce(&Shared) -> Result<Arc<dyn HubEndpoint>, MountError> + Send>;

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
    filters: Vec<Arc<dyn HubFilter>>,
    policies: Policies,
    authenticator: Option<Arc<dyn Authenticator>>,
    mounts: Vec<(String, Mounter, EndpointOptions)>,
    cors: Option<Cors>,
    max_connections: Option<usize>,
    max_pending: Option<usize>,
    serve: ServeOptions,
    #[cfg(feature = "rest")]
    rest: Option<crate::rest::RestApi>,
}

/// Negotiated connections that may wait for their transport at once, by default.
const MAX_PENDING: usize = 10_000;

/// The server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A hub injects a service that is not registered.
    #[error(transparent)]
    MissingService(#[from] MissingServiceError),
    /// A hub requires a policy that is not registered.
    #[error(transparent)]
    UnknownPolicy(#[from] UnknownPolicyError),
    /// Two hubs are mounted on the same path.
    #[error("two hubs are mounted on `{0}`")]
    DuplicatePath(String),
    /// A hub could not be mounted for another reason.
    #[error("{0}")]
    Mount(String),
}

impl From<MountError> for BuildError {
    fn from(error: MountError) -> Self {
        match error {
            MountError::MissingService(missing) => Self::MissingService(missing),
            MountError::UnknownPolicy(unknown) => Self::UnknownPolicy(unknown),
            other => Self::Mount(other.to_string()),
        }
    }
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

    /// Adds a filter around every hub's invocations and connection hooks, before the
    /// hubs' own filters (see [`HubFilter`]).
    #[must_use]
    pub fn filter(mut self, filter: impl HubFilter) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// Registers an authorization policy that `#[hub(authorize(policy = "name"))]` names:
    /// an async predicate over the user, the hub and the method (see [`Policy`]).
    #[must_use]
    pub fn policy(mut self, name: impl Into<String>, policy: impl Policy) -> Self {
        self.policies.insert(name, policy);
        self
    }

    /// Authenticates the requests of every endpoint that has no authenticator of its own
    /// ([`EndpointOptions::authenticate`]).
    #[must_use]
    pub fn authenticate(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Serves the Azure SignalR Service data-plane REST API (versions 2022-06-01 and v1)
    /// under `/api`, for the server's hubs by name: the hub at `/chat` is `chat`
    /// (case-insensitively). Without a call to this method or
    /// [`rest_api_authenticate`](Self::rest_api_authenticate) there is no `/api`. With
    /// the `rest` feature.
    ///
    /// Callers authenticate as the service has them do: `Authorization: Bearer <jwt>`, a
    /// JWT signed HS256 with `access_key`, whose `aud` is the request's URL without its
    /// query (`http://host:port/api/hubs/chat/:send`; `https` is accepted too, for a
    /// server behind a proxy that ends TLS) and whose `exp` has not passed (no leeway).
    /// Anything else gets `401`. The key is used as text, as the service uses the
    /// `AccessKey` of its connection string, so tokens an app signs for the service with
    /// that key are accepted once the server is given the same string.
    ///
    /// The API's operations: health; sends to the hub (with `excluded` connections), a
    /// user, a group (with `excluded`) or a connection, each delivered as an invocation
    /// of the body's `target` with its `arguments`, on JSON and MessagePack connections
    /// alike; closes of the hub's, a group's, a user's connections or of one (with a
    /// `reason` the client sees as the Close's error); existence of a connection, a user,
    /// a group; a connection into and out of a group or out of all; a user into a group
    /// (for `ttl` seconds: see [`Groups::add_user`](hubs_core::Groups::add_user)), out
    /// of one or of all; the connections of a group (`GET …/groups/{group}/connections`,
    /// from 2024-12-01). With a backplane, a call on any server reaches every server.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use hubs_core::Hub;
    /// # async fn f<H: Hub>(my_hub: H) -> std::io::Result<()> {
    /// hubs_transport::Server::new()
    ///     .hub("/chat", my_hub)
    ///     .rest_api("the access key of the app")
    ///     .serve("127.0.0.1:5000")
    ///     .await
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When `access_key` is empty: anyone could sign tokens with it.
    #[cfg(feature = "rest")]
    #[must_use]
    pub fn rest_api(mut self, access_key: impl AsRef<[u8]>) -> Self {
        assert!(
            !access_key.as_ref().is_empty(),
            "the REST API's access key is empty: anyone could sign tokens with it"
        );
        let key = jsonwebtoken::DecodingKey::from_secret(access_key.as_ref());
        self.rest = Some(crate::rest::RestApi::new(crate::rest::Access::Key(key)));
        self
    }

    /// Serves the REST API as [`rest_api`](Self::rest_api) does, letting `authenticator`
    /// decide who may call it instead of an access key: a request it authenticates a user
    /// for is served, any other gets `401`. With the `rest` feature.
    ///
    /// Whoever it lets in may send to every client and close every connection: give it
    /// an authenticator of its own that admits only your back ends (say, hubs-auth's
    /// `JwtAuthenticator` with an issuer and audience only they have tokens for), never
    /// the one your hubs' clients authenticate with.
    #[cfg(feature = "rest")]
    #[must_use]
    pub fn rest_api_authenticate(mut self, authenticator: impl Authenticator) -> Self {
        let access = crate::rest::Access::Authenticator(Arc::new(authenticator));
        self.rest = Some(crate::rest::RestApi::new(access));
        self
    }

    /// The most connections the server runs at once, over all its hubs and raw endpoints
    /// (default: no limit). Past it, negotiate and new transports get `503 Service
    /// Unavailable`; running connections are not affected.
    /// [`EndpointOptions::max_connections`] limits one endpoint.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// The most negotiated connections that may wait for their transport at once
    /// (default 10,000; each is forgotten 15 s after its negotiate if no transport came).
    /// At the cap a new negotiate evicts the oldest unused one, whose token then gets
    /// `404 Not Found` as an expired one does: a flood of negotiates holds a bounded
    /// amount of memory and never locks out a real client, whose transport follows its
    /// negotiate within moments. Evictions are counted in
    /// `signalr_server_negotiations_evicted_total` and logged (at most once a second).
    #[must_use]
    pub fn max_pending_negotiations(mut self, max: usize) -> Self {
        self.max_pending = Some(max);
        self
    }

    /// How the server accepts and serves HTTP connections (the header deadline); see
    /// [`ServeOptions`].
    #[must_use]
    pub fn serve_options(mut self, options: ServeOptions) -> Self {
        self.serve = options;
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
    pub fn hub_with<H: Hub>(self, path: &str, hub: H, options: HubOptions) -> Self {
        self.hub_with_endpoint(path, hub, options, EndpointOptions::default())
    }

    /// Mounts `hub` at `path` with `options`, reached over HTTP as `endpoint` says (which
    /// transports, the long-poll timeout, who may connect).
    ///
    /// ```no_run
    /// # use hubs_core::{Hub, HubOptions, TransportKind};
    /// # use hubs_transport::{EndpointOptions, Server};
    /// # fn f<H: Hub>(my_hub: H) -> Server {
    /// Server::new().hub_with_endpoint(
    ///     "/chat",
    ///     my_hub,
    ///     HubOptions::default(),
    ///     EndpointOptions::default()
    ///         .transports([TransportKind::WebSockets])
    ///         .authorize(|request| request.access_token().is_some()),
    /// )
    /// # }
    /// ```
    #[must_use]
    pub fn hub_with_endpoint<H: Hub>(
        mut self,
        path: &str,
        hub: H,
        options: HubOptions,
        endpoint: EndpointOptions,
    ) -> Self {
        // Metrics, spans and logs name the hub by its path unless it has a name.
        let options = match options.configured_name() {
            Some(_) => options,
            None => options.name(path),
        };
        self.mounts.push((
            normalize(path),
            Box::new(move |shared: &Shared| {
                let options = options.with_server(&shared.filters, shared.policies.clone());
                HubRuntime::new(hub, options, shared.services.clone())
                    .map(|rt| rt as Arc<dyn HubEndpoint>)
            }),
            endpoint,
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

    /// Mounts a raw connection handler at `path` with `options`; of those, the message
    /// size limit, the outgoing queue capacity and the send timeout apply.
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
            Box::new(move |_: &Shared| Ok(Arc::new(endpoint) as Arc<dyn HubEndpoint>)),
            EndpointOptions::default(),
        ));
        self
    }

    /// Sets the hubs up: checks services and paths.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when a hub injects an unregistered service or two hubs share a path.
    pub fn build(self) -> Result<HubService, BuildError> {
        let shared = Shared {
            services: Arc::new(self.services),
            filters: self.filters,
            policies: Arc::new(self.policies),
        };
        let mut hubs: Vec<Mounted> = Vec::new();
        for (path, mount, options) in self.mounts {
            if hubs.iter().any(|mounted| mounted.path == path) {
                return Err(BuildError::DuplicatePath(path));
            }
            let options = options.or_authenticate(self.authenticator.as_ref());
            hubs.push(Mounted {
                endpoint: mount(&shared)?,
                path,
                limit: ConnectionLimit::new(options.connection_limit()),
                users: options.per_user_limit().map(crate::limits::UserLimit::new),
                options,
            });
        }
        Ok(HubService {
            inner: Arc::new(Inner {
                hubs,
                registry: Registry::new(self.max_pending.unwrap_or(MAX_PENDING)),
                cors: self.cors,
                limit: ConnectionLimit::new(self.max_connections),
                serve: self.serve,
                #[cfg(feature = "rest")]
                rest: self.rest,
            }),
        })
    }

    /// Builds the server and binds `addr`, without serving yet: the [`Bound`] server
    /// tells the address it got (bind port 0 and read it, as tests do), then serves.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use hubs_core::Hub;
    /// # async fn f<H: Hub>(my_hub: H) -> std::io::Result<()> {
    /// let server = hubs_transport::Server::new().hub("/chat", my_hub).bind("127.0.0.1:0").await?;
    /// let url = format!("http://{}/chat", server.local_addr());
    /// tokio::spawn(server.serve());
    /// // connect a client to `url` ...
    /// # let _ = url;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Build errors (as [`io::ErrorKind::InvalidInput`]) and errors binding the address.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Bound> {
        let service = self.build()?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        tracing::info!(address = %local_addr, "hubs: listening on {local_addr}");
        Ok(Bound {
            service,
            listener,
            local_addr,
        })
    }

    /// Builds the server, binds `addr` and serves it until an error stops the listener;
    /// the address it bound is logged at `info` (`hubs: listening on …`). To read it in
    /// code (port 0), use [`bind`](Self::bind).
    ///
    /// # Errors
    ///
    /// Build errors and errors binding the address.
    pub async fn serve(self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.bind(addr).await?.serve().await
    }
}

/// A built server listening on its address, not yet serving: [`Server::bind`].
pub struct Bound {
    service: HubService,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// The address the server listens on: with port 0, the port the system chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The service: hub contexts for code outside hubs, the active connection count,
    /// shutdown.
    pub fn service(&self) -> &HubService {
        &self.service
    }

    /// Serves until accepting fails for good ([`HubService::serve`]).
    ///
    /// # Errors
    ///
    /// An error from `accept` that is not about one connection.
    pub async fn serve(self) -> io::Result<()> {
        self.service.serve(self.listener).await
    }

    /// Serves until `signal` completes, then closes every connection
    /// ([`HubService::serve_with_shutdown`]).
    ///
    /// # Errors
    ///
    /// An error from `accept` that is not about one connection.
    pub async fn serve_with_shutdown(
        self,
        signal: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        self.service
            .serve_with_shutdown(self.listener, signal)
            .await
    }
}
