//! Per-hub settings, with the defaults of ASP.NET Core.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::base::identity::{Request, User};
use crate::base::slow_consumer::{OutboundBudget, SlowConsumerPolicy};
use crate::routing::lifetime::LifetimeManager;
use crate::routing::memory::InMemoryLifetimeManager;
use hubs_protocol::{DEFAULT_MAX_MESSAGE_SIZE, Protocol};

type UserIdProvider = Arc<dyn Fn(&Request) -> Option<String> + Send + Sync>;

/// How one hub behaves. Every setting has the official server's default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hubs_core::HubOptions;
///
/// let options = HubOptions::default()
///     .enable_detailed_errors(true)
///     .keep_alive_interval(Duration::from_secs(10))
///     .user_id(|request| request.query("user").map(str::to_owned));
/// assert!(options.detailed_errors());
/// ```
#[derive(Clone)]
pub struct HubOptions {
    pub(crate) detailed_errors: bool,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) client_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) max_parallel_invocations: usize,
    pub(crate) outbound_budget: OutboundBudget,
    pub(crate) send_timeout: Duration,
    pub(crate) slow_consumer: SlowConsumerPolicy,
    pub(crate) client_result_timeout: Duration,
    pub(crate) stream_buffer_capacity: usize,
    pub(crate) max_upload_buffer: usize,
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) user_id: Option<UserIdProvider>,
    pub(crate) name: Option<String>,
    pub(crate) lifetime: Option<Arc<dyn LifetimeManager>>,
    pub(crate) stateful_reconnects: bool,
    pub(crate) stateful_reconnect_buffer_size: usize,
    pub(crate) stateful_reconnect_window: Duration,
    pub(crate) close_on_authentication_expiration: bool,
    pub(crate) authentication_refresh: Option<crate::hub::refresh::AuthenticationRefresh>,
    pub(crate) filters: Vec<Arc<dyn crate::base::filter::HubFilter>>,
    pub(crate) outgoing_filters: Vec<Arc<dyn crate::base::outgoing::OutgoingFilter>>,
    pub(crate) policies: Arc<crate::base::authorization::Policies>,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            detailed_errors: false,
            keep_alive_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
            max_parallel_invocations: 1,
            outbound_budget: OutboundBudget::default(),
            send_timeout: Duration::from_secs(10),
            slow_consumer: SlowConsumerPolicy::default(),
            client_result_timeout: Duration::from_secs(30),
            stream_buffer_capacity: 10,
            max_upload_buffer: 1 << 20,
            protocols: Protocol::ALL.to_vec(),
            user_id: None,
            name: None,
            lifetime: None,
            stateful_reconnects: false,
            stateful_reconnect_buffer_size: 100_000,
            stateful_reconnect_window: Duration::from_secs(15),
            close_on_authentication_expiration: false,
            authentication_refresh: None,
            filters: Vec::new(),
            outgoing_filters: Vec::new(),
            policies: Arc::default(),
        }
    }
}

impl HubOptions {
    /// Closes a connection when its user's credential expires (ASP.NET Core's
    /// `CloseOnAuthenticationExpiration`, default off): the client gets a Close with an
    /// error that does not allow reconnecting. The expiry is the authenticated user's
    /// ([`User::expires_at`](crate::User::expires_at), a JWT's `exp`).
    #[must_use]
    pub fn close_on_authentication_expiration(mut self, on: bool) -> Self {
        self.close_on_authentication_expiration = on;
        self
    }

    /// Lets live connections take a fresh credential without reconnecting (ASP.NET Core
    /// 11's authentication refresh, the official 11.0 client's
    /// `withAuthenticationRefresh()`; default off, and `POST {hub}/refresh` answers `404
    /// {"error":"refresh_disabled"}`). Negotiate then tells the client its token's lifetime
    /// (`tokenLifetimeSeconds`), and on long polling an expired credential is answered per
    /// poll (`409 {"error":"authentication_refresh_required"}`) rather than by the close
    /// timer. See [`AuthenticationRefresh`](crate::AuthenticationRefresh) for what is
    /// accepted and what changes.
    #[must_use]
    pub fn authentication_refresh(
        mut self,
        refresh: crate::hub::refresh::AuthenticationRefresh,
    ) -> Self {
        self.authentication_refresh = Some(refresh);
        self
    }

    /// Whether the hub takes refreshed credentials.
    pub fn refreshes_authentication(&self) -> bool {
        self.authentication_refresh.is_some()
    }

    /// Adds a filter around this hub's invocations and connection hooks, after the
    /// server's filters and those added before it (see [`HubFilter`](crate::base::filter::HubFilter)).
    #[must_use]
    pub fn filter(mut self, filter: impl crate::base::filter::HubFilter) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// Puts the server's filters (first) and policies in effect for this hub; the server
    /// does it when the hub is mounted.
    #[doc(hidden)]
    #[must_use]
    pub fn with_server(
        mut self,
        filters: &[Arc<dyn crate::base::filter::HubFilter>],
        policies: Arc<crate::base::authorization::Policies>,
    ) -> Self {
        let mut all = filters.to_vec();
        all.append(&mut self.filters);
        self.filters = all;
        self.policies = policies;
        self
    }

    /// Adds a filter of the messages this hub sends to clients (see
    /// [`OutgoingFilter`](crate::base::outgoing::OutgoingFilter)).
    #[must_use]
    pub fn outgoing_filter(mut self, filter: impl crate::base::outgoing::OutgoingFilter) -> Self {
        self.outgoing_filters.push(Arc::new(filter));
        self
    }

    /// Lets clients that ask for it use stateful reconnect (ASP.NET Core's
    /// `AllowStatefulReconnects`, default off): over WebSockets, a connection whose socket
    /// drops stays alive for 15 s, keeping its id, groups, items, pending client results
    /// and streams; a client that comes back within that time resumes it, and every
    /// message sent meanwhile is delivered once, in order.
    #[must_use]
    pub fn allow_stateful_reconnects(mut self, on: bool) -> Self {
        self.stateful_reconnects = on;
        self
    }

    /// How many bytes of sent messages a stateful connection keeps until the client
    /// acknowledges them (default 100,000, as ASP.NET Core's
    /// `StatefulReconnectBufferSize`). Past it the connection stops taking messages until an
    /// acknowledgement comes, so its queue fills and the slow-consumer policy applies.
    #[must_use]
    pub fn stateful_reconnect_buffer_size(mut self, bytes: usize) -> Self {
        self.stateful_reconnect_buffer_size = bytes.max(1);
        self
    }

    /// How long a stateful connection whose socket dropped waits for its client to come
    /// back (default 15 s, the official server's `DisconnectTimeout`).
    #[must_use]
    pub fn stateful_reconnect_window(mut self, window: Duration) -> Self {
        self.stateful_reconnect_window = window;
        self
    }

    /// How long a stateful connection waits for its client to come back.
    pub fn configured_stateful_reconnect_window(&self) -> Duration {
        self.stateful_reconnect_window
    }

    /// The replay buffer's size when stateful reconnect is allowed, else `None`.
    pub fn stateful_reconnect(&self) -> Option<usize> {
        self.stateful_reconnects
            .then_some(self.stateful_reconnect_buffer_size)
    }

    /// Whether callers see the type and message of every error (default off: only
    /// [`HubError`](crate::HubError)s are shown).
    #[must_use]
    pub fn enable_detailed_errors(mut self, on: bool) -> Self {
        self.detailed_errors = on;
        self
    }

    /// How often the server sends a Ping when it has sent nothing else (default 15 s).
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long a client may stay silent, once it has sent its first Ping, before the
    /// connection is closed (default 30 s).
    #[must_use]
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = timeout;
        self
    }

    /// How long a client has to complete the handshake (default 15 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest incoming message, framing included (default 32 KiB); `None` for no
    /// limit.
    #[must_use]
    pub fn max_message_size(mut self, max: Option<usize>) -> Self {
        self.max_message_size = max;
        self
    }

    /// How many invocations of one client run at once (default 1); later ones wait.
    /// The connection keeps reading meanwhile (up to 1024 waiting invocations, then it
    /// holds back until one starts), so client results and pings still arrive.
    #[must_use]
    pub fn max_parallel_invocations(mut self, max: usize) -> Self {
        self.max_parallel_invocations = max.max(1);
        self
    }

    /// How much a connection's outbound queue may hold, in bytes, and when a client
    /// counts as persistently behind (see [`OutboundBudget`] for the defaults and why).
    #[must_use]
    pub fn outbound_budget(mut self, budget: OutboundBudget) -> Self {
        self.outbound_budget = budget;
        self
    }

    /// How long the transport may make no progress writing to a client before the
    /// connection is closed (default 10 s, ASP.NET Core's `TransportSendTimeout`). What
    /// a send does for a client that stays behind is the
    /// [`slow_consumer`](Self::slow_consumer) policy.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// What a send does for a connection that is persistently behind (see
    /// [`OutboundBudget`]; default: a message to many connections closes it, so a fan-out
    /// never waits on a client that does not read; a message to it alone waits up to 10 s
    /// for it to catch up first). Hub code can override it per connection with
    /// [`Context::set_slow_consumer_policy`](crate::Context::set_slow_consumer_policy).
    #[must_use]
    pub fn slow_consumer(mut self, policy: SlowConsumerPolicy) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// How long the server waits for a client result before failing it (default 30 s;
    /// the official server has no limit, which leaves a hub method hanging on a client
    /// that never answers).
    #[must_use]
    pub fn client_result_timeout(mut self, timeout: Duration) -> Self {
        self.client_result_timeout = timeout;
        self
    }

    /// How many items of one upload stream wait for the hub method before the server
    /// holds back from reading that connection (default 10, ASP.NET Core's
    /// `StreamBufferCapacity`).
    ///
    /// Holding back is brief: only while the method is taking items, and for at most a
    /// second without progress, so Pings, Completions, cancellations and the start of
    /// queued invocations are never stuck behind an upload. An upload its method does
    /// not drain (its invocation still waits for a slot, or the method awaits something
    /// else) keeps buffering within [`max_upload_buffer`](Self::max_upload_buffer).
    #[must_use]
    pub fn stream_buffer_capacity(mut self, items: usize) -> Self {
        self.stream_buffer_capacity = items.max(1);
        self
    }

    /// How many bytes the uploads of one connection may buffer together (default
    /// 1 MiB). An item that would go over fails its upload: the buffered items are
    /// dropped and the method's [`UploadStream`](crate::base::stream::UploadStream) yields the error
    /// `Client stream '{id}' exceeded the {n}-byte upload buffer of its connection and was
    /// dropped.`, which `?` turns into the invocation's error. The connection and its
    /// other streams carry on.
    #[must_use]
    pub fn max_upload_buffer(mut self, bytes: usize) -> Self {
        self.max_upload_buffer = bytes;
        self
    }

    /// The hub protocols clients may choose (default both).
    #[must_use]
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = Protocol>) -> Self {
        self.protocols = protocols.into_iter().collect();
        self
    }

    /// How to find the user a connection belongs to, from its HTTP request (default:
    /// connections have no user). Used by the `user` and `users` targets.
    #[must_use]
    pub fn user_id(
        mut self,
        provider: impl Fn(&Request) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.user_id = Some(Arc::new(provider));
        self
    }

    /// The user id of a connection opened by `request`: the hub's provider
    /// ([`user_id`](Self::user_id)), else the authenticated user's id (`sub`).
    pub fn user_id_of(&self, request: &Request) -> Option<String> {
        match &self.user_id {
            Some(provider) => provider(request),
            None => request.user().and_then(User::id).map(str::to_owned),
        }
    }

    /// The hub's name in metrics, spans and logs (default: the path the server mounts it
    /// at, such as `/chat`; the hub's type name for a runtime built by hand).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name set with [`name`](Self::name), if any.
    pub fn configured_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Routes messages through `lifetime` (for instance a backplane) instead of the
    /// in-memory default.
    #[must_use]
    pub fn lifetime_manager(mut self, lifetime: Arc<dyn LifetimeManager>) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Whether detailed errors are on.
    pub fn detailed_errors(&self) -> bool {
        self.detailed_errors
    }

    /// The configured limit on one incoming message.
    pub fn max_message_size_limit(&self) -> Option<usize> {
        self.max_message_size
    }

    /// The configured send timeout.
    pub fn configured_send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// The configured budget of each connection's outbound queue.
    pub fn configured_outbound_budget(&self) -> OutboundBudget {
        self.outbound_budget
    }

    pub(crate) fn take_lifetime(&mut self) -> Arc<dyn LifetimeManager> {
        self.lifetime
            .take()
            .unwrap_or_else(|| Arc::new(InMemoryLifetimeManager::new()))
    }
}

impl fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubOptions")
            .field("detailed_errors", &self.detailed_errors)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("client_timeout", &self.client_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_parallel_invocations", &self.max_parallel_invocations)
            .field("outbound_budget", &self.outbound_budget)
            .field("send_timeout", &self.send_timeout)
            .field("slow_consumer", &self.slow_consumer)
            .field("client_result_timeout", &self.client_result_timeout)
            .field("stream_buffer_capacity", &self.stream_buffer_capacity)
            .field("max_upload_buffer", &self.max_upload_buffer)
            .field("protocols", &self.protocols)
            .field("stateful_reconnect", &self.stateful_reconnect())
            .field("authentication_refresh", &self.authentication_refresh)
            .finish_non_exhaustive()
    }
}
