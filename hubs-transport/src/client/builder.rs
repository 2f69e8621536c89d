//! [`HubConnectionBuilder`]: the URL, transports, protocol, headers, tokens, timeouts and
//! reconnect policy of a connection.

use super::*;

/// Builds a [`HubConnection`].
pub struct HubConnectionBuilder {
    pub(super) url: String,
    pub(super) transports: Vec<TransportKind>,
    pub(super) protocol: Protocol,
    pub(super) headers: HeaderMap,
    pub(super) access_token: Option<TokenProvider>,
    pub(super) skip_negotiation: bool,
    pub(super) keep_alive: Duration,
    pub(super) server_timeout: Duration,
    pub(super) handshake_timeout: Duration,
    pub(super) retry: Option<Arc<dyn RetryPolicy>>,
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
