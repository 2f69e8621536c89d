//! The built server as an HTTP service: serving, shutdown, the hub context, and the
//! tower `Service` that lets other applications mount it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use hubs_core::{Hub, HubContext, HubEndpoint, HubRuntime};
use tokio::net::TcpListener;

use crate::body::Body;
use crate::cors::Cors;
use crate::limits::ConnectionLimit;
use crate::listener::ServeOptions;
use crate::options::EndpointOptions;
use crate::registry::Registry;

/// One mounted endpoint: a hub or a raw connection handler on a path.
pub(crate) struct Mounted {
    pub(crate) path: String,
    pub(crate) endpoint: Arc<dyn HubEndpoint>,
    pub(crate) options: EndpointOptions,
    pub(crate) limit: Arc<ConnectionLimit>,
    /// Connections per user, when the endpoint caps them.
    pub(crate) users: Option<Arc<crate::limits::UserLimit>>,
}

pub(crate) struct Inner {
    pub(crate) hubs: Vec<Mounted>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) cors: Option<Cors>,
    pub(crate) limit: Arc<ConnectionLimit>,
    pub(crate) serve: ServeOptions,
    /// The REST API under `/api`, when the server has an access key.
    #[cfg(feature = "rest")]
    pub(crate) rest: Option<crate::rest::RestApi>,
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

    /// Shuts every hub down, closing its connections: each client gets a Close that allows
    /// it to reconnect, pending client results fail, and `on_disconnected` runs.
    pub fn shutdown(&self) {
        for mounted in &self.inner.hubs {
            mounted.endpoint.shutdown();
        }
    }

    /// Serves `listener` until `signal` completes, then stops accepting and closes every
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

    /// Accepts connections on `listener` and serves them until accepting fails for good,
    /// with the server's [`ServeOptions`] (see [`serve`](crate::serve)).
    ///
    /// # Errors
    ///
    /// An error from `accept` that is not about one connection.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        let options = self.inner.serve.clone();
        crate::listener::serve(listener, self, options).await
    }

    /// How many connections of this server run now (hubs and raw endpoints).
    pub fn active_connections(&self) -> usize {
        self.inner.limit.active()
    }

    /// The hub (or raw endpoint) mounted at `path`, as transports see it: what an
    /// in-process client connects to (`hubs::testing`).
    pub fn endpoint(&self, path: &str) -> Option<Arc<dyn HubEndpoint>> {
        self.find(path).map(|(_, mounted)| mounted.endpoint.clone())
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

/// A mount path as routing compares it: lowercase, with a leading `/` and no trailing one.
pub(crate) fn normalize(path: &str) -> String {
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}
