//! Everything a connection is built with, as the builder leaves it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use hubs_protocol::Protocol;
use hubs_protocol::TransportKind;

use crate::retry::RetryPolicy;
use crate::transport::in_memory::Connector;

/// The largest message read from the server by default: 1 MiB (servers bound what they
/// read at 32 KiB by default; what they send, results and broadcasts, is often larger).
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// How long before its expiry a token is refreshed by default: 5 minutes (the official
/// client's `refreshBeforeExpirationInMilliseconds`).
pub(crate) const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Asked for a bearer token before negotiate and each transport connection.
pub(crate) type TokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Everything a connection was built with.
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) transports: Vec<TransportKind>,
    pub(crate) protocol: Protocol,
    pub(crate) headers: HeaderMap,
    pub(crate) access_token: Option<TokenProvider>,
    pub(crate) skip_negotiation: bool,
    pub(crate) keep_alive: Duration,
    pub(crate) server_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    /// The largest message read from the server (framing included); `None`: any size.
    pub(crate) max_message_size: Option<usize>,
    pub(crate) retry: Option<Arc<dyn RetryPolicy>>,
    /// The replay buffer's size when stateful reconnect is asked for.
    pub(crate) stateful: Option<usize>,
    /// How long a stateful connection keeps trying to resume before it gives up on it.
    pub(crate) resume_window: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::tls::TlsConfig,
    /// Opens the transport instead of HTTP (an in-process server).
    pub(crate) connector: Option<Arc<dyn Connector>>,
    /// Refresh the token before it expires (the official `withAuthenticationRefresh`).
    pub(crate) auto_refresh: bool,
    /// How long before its expiry the token is refreshed.
    pub(crate) refresh_margin: Duration,
    /// The name of the first header given to the builder that HTTP does not allow:
    /// starting fails with it.
    pub(crate) invalid_header: Option<String>,
}
