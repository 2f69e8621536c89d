//! HTTP settings of one endpoint (a hub or a raw connection handler on a path): which
//! transports it offers, how long a long poll is held, and who may connect. ASP.NET
//! Core's `HttpConnectionDispatcherOptions`; the hub's own settings are
//! [`HubOptions`](hubs_core::HubOptions).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hubs_core::{Authenticator, Request, TransportKind};

type Authorizer = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// How long a negotiated connection may wait for its transport, how long a closed one is
/// remembered, and how long a long-polling connection may go without a poll (the official
/// server's DisconnectTimeout).
pub(crate) const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How one endpoint is reached over HTTP. Every setting has the official server's
/// default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hubs_transport::EndpointOptions;
/// use hubs_core::TransportKind;
///
/// let options = EndpointOptions::default()
///     .transports([TransportKind::ServerSentEvents, TransportKind::LongPolling])
///     .long_poll_timeout(Duration::from_secs(30))
///     .authorize(|request| request.access_token().as_deref() == Some("let-me-in"));
/// assert!(!options.offers(TransportKind::WebSockets));
/// ```
#[derive(Clone)]
pub struct EndpointOptions {
    transports: Vec<TransportKind>,
    long_poll_timeout: Duration,
    authorize: Option<Authorizer>,
    authenticate: Option<Arc<dyn Authenticator>>,
    max_connections: Option<usize>,
    max_connections_per_user: Option<usize>,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        Self {
            transports: vec![
                TransportKind::WebSockets,
                TransportKind::ServerSentEvents,
                TransportKind::LongPolling,
            ],
            long_poll_timeout: Duration::from_secs(90),
            authorize: None,
            authenticate: None,
            max_connections: None,
            max_connections_per_user: None,
        }
    }
}

impl EndpointOptions {
    /// The transports clients may use (default all three), in order of preference.
    #[must_use]
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportKind>) -> Self {
        self.transports = transports.into_iter().collect();
        self
    }

    /// How long a long poll waits for messages before returning empty (default 90 s).
    #[must_use]
    pub fn long_poll_timeout(mut self, timeout: Duration) -> Self {
        self.long_poll_timeout = timeout;
        self
    }

    /// Lets only requests that pass `check` in: negotiate and every transport request
    /// (WebSocket upgrade, event stream, poll, POST, DELETE) of this endpoint. Others get
    /// `401 Unauthorized` with an empty body, which the official clients report as
    /// `Unauthorized: Status code '401'`. [`Request::access_token`] finds the bearer
    /// token wherever the client put it.
    #[must_use]
    pub fn authorize(mut self, check: impl Fn(&Request) -> bool + Send + Sync + 'static) -> Self {
        self.authorize = Some(Arc::new(check));
        self
    }

    /// Authenticates every request of this endpoint with `authenticator` (replacing the
    /// server's, [`Server::authenticate`](crate::Server::authenticate)): negotiate, the
    /// WebSocket upgrade, each long poll and POST. A credential it refuses gets `401`;
    /// the user it finds is the connection's ([`Context::user`](hubs_core::Context::user)),
    /// and its id the default user id.
    #[must_use]
    pub fn authenticate(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticate = Some(Arc::new(authenticator));
        self
    }

    pub(crate) fn authenticator(&self) -> Option<&Arc<dyn Authenticator>> {
        self.authenticate.as_ref()
    }

    pub(crate) fn or_authenticate(
        mut self,
        authenticator: Option<&Arc<dyn Authenticator>>,
    ) -> Self {
        if self.authenticate.is_none() {
            self.authenticate = authenticator.cloned();
        }
        self
    }

    /// The most connections one user runs at once on this endpoint (default: no limit).
    /// Past it, negotiate (and a WebSocket without negotiate) gets `429 Too Many
    /// Requests` with a text saying so. The user is the connection's user id (the hub's
    /// user-id provider, or the authenticated user's `sub`); anonymous connections are not
    /// counted.
    #[must_use]
    pub fn max_connections_per_user(mut self, max: usize) -> Self {
        self.max_connections_per_user = Some(max);
        self
    }

    pub(crate) fn per_user_limit(&self) -> Option<usize> {
        self.max_connections_per_user
    }

    /// The most connections the endpoint runs at once (default: no limit but the
    /// server's, [`Server::max_connections`](crate::Server::max_connections)). Past it,
    /// negotiate and new transports get `503 Service Unavailable`, which the official
    /// clients report as `Service Unavailable: Status code '503'`; running connections are
    /// not affected.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    pub(crate) fn connection_limit(&self) -> Option<usize> {
        self.max_connections
    }

    /// Whether clients may use `transport`.
    pub fn offers(&self, transport: TransportKind) -> bool {
        self.transports.contains(&transport)
    }

    /// The transports offered, in order of preference.
    pub fn offered_transports(&self) -> &[TransportKind] {
        &self.transports
    }

    pub(crate) fn poll_timeout(&self) -> Duration {
        self.long_poll_timeout
    }

    pub(crate) fn checks_requests(&self) -> bool {
        self.authorize.is_some()
    }

    /// Whether `request` may reach the endpoint (always, unless
    /// [`authorize`](Self::authorize) is set).
    pub fn authorizes(&self, request: &Request) -> bool {
        self.authorize.as_ref().is_none_or(|check| check(request))
    }
}

impl fmt::Debug for EndpointOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointOptions")
            .field("transports", &self.transports)
            .field("long_poll_timeout", &self.long_poll_timeout)
            .field("authorize", &self.authorize.is_some())
            .field("authenticate", &self.authenticate.is_some())
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .finish()
    }
}
