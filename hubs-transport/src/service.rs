//! The built server as an HTTP service: serving, shutdown, the hub context, and the
//! tower `Service` that lets other applications mount it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use hubs_core::{Hub, HubContext, HubEndpoint, HubRuntime};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::Body;
use crate::cors::Cors;
use crate::options::EndpointOptions;
use crate::registry::Registry;
use crate::server::normalize;

/// One mounted endpoint: a hub or a raw connection handler on a path.
pub(crate) struct Mounted {
    pub(crate) path: String,
    pub(crate) endpoint: Arc<dyn HubEndpoint>,
    pub(crate) options: EndpointOptions,
}

pub(crate) struct Inner {
    pub(crate) hubs: Vec<Mounted>,
    pub(crate) registry: Registry,
    pub(crate) cors: Option<Cors>,
}

/// The built server as an HTTP service: serve it with [`HubService::serve`], or mount it
/// in a hyper or tower application (it implements `tower_service::Service`, so axum's
/// `Router::nest_service` and `fallback_service` take it). Cheap to clone.
#[derive(Clone)]
pub struct HubService {
    pub(crate) inner: Arc<Inner>,
}

impl HubService {
    /// The context of the first hub of type `H`, for use outside hub methods.
    pub fn hub_context<H: Hub>(&self) -> Option<HubContext<H>> {
        self.inner
            .hubs
            .iter()
            .find_map(|mounted| {
                mounted
                    .endpoint
                    .clone()
                    .as_any()
                    .downcast::<HubRuntime<H>>()
                    .ok()
            })
            .map(|runtime| runtime.context())
    }

    /// Ends every connection of every hub: each client gets a Close that allows it to
    /// reconnect, pending client results fail, and `on_disconnected` runs.
    pub fn shutdown(&self) {
        for mounted in &self.inner.hubs {
            mounted.endpoint.shutdown();
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

    pub(crate) fn find(&self, path: &str) -> Option<(usize, &Mounted)> {
        let path = normalize(path);
        self.inner
            .hubs
            .iter()
            .enumerate()
            .find(|(_, mounted)| mounted.path == path)
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
