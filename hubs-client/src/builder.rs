//! [`HubConnectionBuilder`]: the URL, transports, protocol, headers, tokens, timeouts, TLS,
//! reconnect policy and stateful reconnect of a connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use hubs_protocol::Protocol;
use hubs_protocol::TransportKind;

use crate::config::{Config, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_REFRESH_MARGIN};
use crate::connection::HubConnection;
use crate::retry::{DefaultRetryPolicy, RetryPolicy};
use crate::transport::in_memory::Connector;

impl HubConnection {
    /// A builder for a connection to the hub at `url` (`http://`, `https://`, `ws://` or
    /// `wss://`).
    pub fn builder(url: impl Into<String>) -> HubConnectionBuilder {
        HubConnectionBuilder::new(url.into())
    }
}

/// Builds a [`HubConnection`].
pub struct HubConnectionBuilder {
    config: Config,
}

impl std::fmt::Debug for HubConnectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnectionBuilder")
            .field("url", &self.config.url)
            .field("transports", &self.config.transports)
            .field("protocol", &self.config.protocol)
            .finish_non_exhaustive()
    }
}

impl HubConnectionBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            config: Config {
                url,
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
                max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
                retry: None,
                stateful: None,
                resume_window: Duration::from_secs(15),
                #[cfg(feature = "tls")]
                tls: crate::tls::TlsConfig::default(),
                connector: None,
                auto_refresh: false,
                refresh_margin: DEFAULT_REFRESH_MARGIN,
                invalid_header: None,
            },
        }
    }

    /// Which transports to try, in order (default: WebSockets, Server-Sent Events, long
    /// polling, as offered by the server).
    #[must_use]
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportKind>) -> Self {
        self.config.transports = transports.into_iter().collect();
        self
    }

    /// The hub protocol (default JSON).
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// A header sent on every request. A name or a value that HTTP does not allow is
    /// kept as an error: [`start`](HubConnection::start) then fails with
    /// [`StartError::Header`](crate::error::StartError::Header).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                self.config.headers.insert(name, value);
            }
            _ => {
                self.config
                    .invalid_header
                    .get_or_insert_with(|| name.to_owned());
            }
        }
        self
    }

    /// A bearer token, asked for before negotiate and each transport connection, for each
    /// authentication refresh
    /// ([`refresh_authentication`](HubConnection::refresh_authentication)), and again when
    /// the server answers a long poll, a send or the DELETE with 401 (the request is then
    /// sent once more with the new token).
    #[must_use]
    pub fn access_token<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.config.access_token = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// Connects straight to the hub URL over WebSockets, without negotiating.
    #[must_use]
    pub fn skip_negotiation(mut self) -> Self {
        self.config.skip_negotiation = true;
        self.config.transports = vec![TransportKind::WebSockets];
        self
    }

    /// How often to ping when nothing else was sent (default 15 s).
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.keep_alive = interval;
        self
    }

    /// How long the server may stay silent before the connection is considered lost
    /// (default 30 s).
    #[must_use]
    pub fn server_timeout(mut self, timeout: Duration) -> Self {
        self.config.server_timeout = timeout;
        self
    }

    /// How long the handshake may take (default 15 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// The largest message accepted from the server, record separator or length prefix
    /// included (default 1 MiB); `None` accepts any size. A larger message ends the
    /// connection (it is lost, with the reason, as when the server's bytes cannot be
    /// read). The handshake answer is bounded apart, at 32 KiB.
    #[must_use]
    pub fn max_message_size(mut self, max: Option<usize>) -> Self {
        self.config.max_message_size = max;
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
        self.config.retry = Some(Arc::new(policy));
        self
    }

    /// Asks the server for stateful reconnect (ASP.NET Core 8+ and hubs), with the official
    /// 100,000-byte buffer: over WebSockets, when the socket drops the client opens a new
    /// one to the same connection and both sides replay what the other did not
    /// acknowledge, so nothing is lost and the connection keeps its id, groups and pending
    /// calls ([`ConnectionEvent::Resumed`](crate::ConnectionEvent::Resumed)). A server that
    /// does not offer it is used as usual.
    #[must_use]
    pub fn with_stateful_reconnect(self) -> Self {
        self.stateful_reconnect_buffer_size(100_000)
    }

    /// [`with_stateful_reconnect`](Self::with_stateful_reconnect) with another buffer
    /// size: past it, calls wait until the server acknowledges what was sent.
    #[must_use]
    pub fn stateful_reconnect_buffer_size(mut self, bytes: usize) -> Self {
        self.config.stateful = Some(bytes.max(1));
        self
    }

    /// How long to keep trying to resume a stateful connection before giving up on it
    /// (default 15 s, the official server's window); then the retry policy applies.
    #[must_use]
    pub fn resume_window(mut self, window: Duration) -> Self {
        self.config.resume_window = window;
        self
    }

    /// Refreshes the connection's authentication before the token expires (the official
    /// client's `withAuthenticationRefresh`, `@microsoft/signalr` 11): when negotiate
    /// reports the token's lifetime (`tokenLifetimeSeconds`, from a server that opted in),
    /// a timer started after the handshake calls
    /// [`refresh_authentication`](HubConnection::refresh_authentication)
    /// [`refresh_before_expiration`](Self::refresh_before_expiration) before the end of the
    /// lifetime (5 minutes by default; halfway through a lifetime shorter than twice that).
    /// Each successful refresh arms it again from the new lifetime; a failed one
    /// ([`ConnectionEvent::AuthenticationRefreshFailed`](crate::ConnectionEvent::AuthenticationRefreshFailed))
    /// is not tried again, and the connection stays open. A stop, a close or a reconnect
    /// drops the timer (a reconnect arms a new one from its own negotiate).
    ///
    /// Without it, [`refresh_authentication`](HubConnection::refresh_authentication)
    /// still refreshes on demand, and a long poll the server answers with 409
    /// `authentication_refresh_required` still refreshes the token.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// use hubs_client::{ConnectionEvent, HubConnection};
    ///
    /// # async fn sign_in() -> String { String::new() }
    /// let connection = HubConnection::builder("https://chat.example.com/chat")
    ///     .access_token(|| async { Some(sign_in().await) })
    ///     .with_authentication_refresh()
    ///     .refresh_before_expiration(Duration::from_secs(60))
    ///     .build();
    /// let mut events = connection.events();
    /// connection.start().await?;
    /// while let Ok(event) = events.recv().await {
    ///     if let ConnectionEvent::AuthenticationRefreshFailed(error) = event {
    ///         eprintln!("the token will not be refreshed: {error}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_authentication_refresh(mut self) -> Self {
        self.config.auto_refresh = true;
        self
    }

    /// How long before the token expires the timer of
    /// [`with_authentication_refresh`](Self::with_authentication_refresh) refreshes it
    /// (default 5 minutes; zero refreshes at expiry). A lifetime of at most twice this
    /// is refreshed halfway through. Without `with_authentication_refresh` there is no
    /// timer and this does nothing.
    #[must_use]
    pub fn refresh_before_expiration(mut self, margin: Duration) -> Self {
        self.config.refresh_margin = margin;
        self
    }

    /// TLS settings for `https://` and `wss://` URLs (default: the webpki roots, no client
    /// certificate).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.config.tls = tls;
        self
    }

    /// Connects through `connector` instead of HTTP (the URL is then only a name):
    /// no negotiate, the handshake over the connector's queues.
    #[must_use]
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.config.connector = Some(Arc::new(connector));
        self
    }

    /// The connection, not yet started. Building needs no runtime; `start` does.
    pub fn build(self) -> HubConnection {
        HubConnection::from_config(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StartError;

    #[tokio::test]
    async fn an_invalid_header_fails_start_with_its_name() {
        let connection = HubConnection::builder("http://127.0.0.1:9/hub")
            .header("x-fine", "yes")
            .header("x-token", "a line\nbreak")
            .header("not a name", "value")
            .build();
        let started = connection.start().await;
        assert!(
            matches!(&started, Err(StartError::Header(name)) if name == "x-token"),
            "{started:?}"
        );
        assert_eq!(
            started.map_err(|e| e.to_string()),
            Err("invalid header `x-token`: its name or value is not allowed in HTTP".to_owned())
        );
    }

    #[tokio::test]
    async fn an_invalid_header_name_fails_start() {
        let connection = HubConnection::builder("http://127.0.0.1:9/hub")
            .header("not a name", "value")
            .build();
        assert!(matches!(
            connection.start().await,
            Err(StartError::Header(name)) if name == "not a name"
        ));
    }
}
