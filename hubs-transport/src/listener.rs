//! Accepting and serving TCP connections, with the limits a server on the open internet
//! needs: a deadline for request headers (which also closes idle keep-alive
//! connections), and accept errors (out of file descriptors) logged at a bounded rate
//! while existing connections keep being served.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hubs_core::Throttle;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How a server accepts and serves HTTP connections.
///
/// ```
/// use std::time::Duration;
/// use hubs_transport::ServeOptions;
///
/// let options = ServeOptions::default().header_read_timeout(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct ServeOptions {
    header_read_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// A TLS setting of the server could not be used.
#[cfg(feature = "tls")]
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl ServeOptions {
    /// How long a client has to send a request's headers (default 30 s, as Kestrel's
    /// `RequestHeadersTimeout`). The clock also runs while a keep-alive connection waits
    /// for its next request, so a connection that sends nothing, or a header a byte at a
    /// time, is closed when it runs out. Upgraded WebSockets and running requests (long
    /// polls, event streams) are not affected.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Terminates TLS with `config` (rustls): every connection is `https`/`wss`. Give the
    /// configuration `http/1.1` in its ALPN protocols. The TLS handshake must finish within
    /// the header deadline.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, config: std::sync::Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Terminates TLS with a certificate chain and its private key, in PEM (rustls with
    /// the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`).
    ///
    /// ```no_run
    /// use hubs_transport::{Server, ServeOptions};
    /// # async fn f(server: Server) -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = ServeOptions::default().tls_pem(
    ///     &std::fs::read("cert.pem")?,
    ///     &std::fs::read("key.pem")?,
    /// )?;
    /// server.serve_options(tls).serve("0.0.0.0:443").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// When the PEM texts cannot be read or the key does not match the certificate.
    #[cfg(feature = "tls")]
    pub fn tls_pem(self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError(format!("cannot read the certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError("no certificate in the PEM text".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError(format!("cannot read the private key: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError(format!("cannot use the certificate: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(self.tls(std::sync::Arc::new(config)))
    }
}

/// Serves `service` (a [`HubService`](crate::HubService), or any tower service such as
/// an axum `Router` with hubs mounted in it) on `listener` with `options`, until accepting
/// fails for good.
///
/// Use this rather than a bare hyper or axum server loop: `axum::serve` sets no header
/// deadline, so a client that sends half a request holds its connection forever. If you
/// run your own hyper server, give its `http1::Builder` a timer and a
/// `header_read_timeout`, as this function does.
///
/// # Errors
///
/// An error from `accept` that is not about one connection.
pub async fn serve<S, B>(listener: TcpListener, service: S, options: ServeOptions) -> io::Result<()>
where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let throttle = AcceptErrors::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if is_per_connection(&error) => {
                throttle.note(&error);
                // Out of file descriptors and the like: give connections time to close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let deadline = options.header_read_timeout;
        #[cfg(feature = "tls")]
        if let Some(config) = options.tls.clone() {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            tokio::spawn(async move {
                // The handshake gets the header deadline: a client that stalls in it is cut.
                match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, peer, service, deadline).await,
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
            continue;
        }
        tokio::spawn(serve_connection(stream, peer, service, deadline));
    }
}

async fn serve_connection<S, B>(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    service: S,
    header_read_timeout: Duration,
) where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%peer, %error, "http connection closed with an error");
    }
}

/// Errors that concern one connection (or a passing shortage), not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::OutOfMemory
    ) || matches!(error.raw_os_error(), Some(12 | 23 | 24 | 105))
}

/// Logs accept errors at most once a second, with how many there were.
#[derive(Debug, Default)]
struct AcceptErrors(Throttle);

impl AcceptErrors {
    fn note(&self, error: &io::Error) {
        if let Some(count) = self.0.allow() {
            tracing::warn!(%error, count, "accepting connections fails (out of file descriptors?); existing connections are still served");
        }
    }
}

/// rustls with *ring* (no C toolchain beyond cc, no aws-lc build). rustls 0.23.48
/// deprecates it for lacking post-quantum key exchange; the choice stands until the
/// workspace moves to aws-lc-rs.
#[cfg(feature = "tls")]
#[allow(deprecated)]
fn ring_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
