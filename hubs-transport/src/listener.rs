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
use tokio::net::{TcpListener, TcpStream};

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
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

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
                // Out of file descriptors and the like: give connections time to end.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            service.clone(),
            options.header_read_timeout,
        ));
    }
}

async fn serve_connection<S, B>(
    stream: TcpStream,
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
        tracing::debug!(%peer, %error, "http connection ended with an error");
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
