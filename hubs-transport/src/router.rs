//! Routing one HTTP request: negotiate, the three transports, and the official status
//! codes and texts for everything else (protocol.md §3.1).

use http::{Method, Request, Response, StatusCode, header};
use hubs_core::{ConnectionId, TransportKind, wire};

use crate::auth;
use crate::body::{self, Body};
use crate::http_transport::{self, HttpConnection};
use crate::limits::admit;
use crate::negotiate;
use crate::options::EndpointOptions;
use crate::registry::{Lookup, Posted, TooManyPending};
use crate::service::{HubService, Mounted};
use crate::stateful;
use crate::websocket;

impl HubService {
    pub(crate) async fn route<B>(&self, mut request: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_owned();
        let lower = path.trim_end_matches('/').to_ascii_lowercase();
        if let Some(hub_path) = lower.strip_suffix("/negotiate") {
            let Some((index, mounted)) = self.find(hub_path) else {
                return body::text(StatusCode::NOT_FOUND, "");
            };
            if request.method() != Method::POST {
                return body::text(StatusCode::METHOD_NOT_ALLOWED, "");
            }
            if let Some(refused) = unauthorized(&mounted.options, &request) {
                return refused;
            }
            let user = match auth::identify(mounted, request.uri(), request.headers()).await {
                Ok(user) => user,
                Err(refused) => return refused,
            };
            if let Some(users) = &mounted.users
                && let Some(id) = user_id(mounted, &request, &user)
                && users.is_full(&id)
            {
                return auth::too_many_for_user();
            }
            let query = request.uri().query();
            return self.negotiate(index, mounted, query);
        }
        let Some((index, mounted)) = self.find(&path) else {
            return body::text(StatusCode::NOT_FOUND, "");
        };
        if let Some(refused) = unauthorized(&mounted.options, &request) {
            return refused;
        }
        let user = match auth::identify(mounted, request.uri(), request.headers()).await {
            Ok(user) => user,
            Err(refused) => return refused,
        };
        let endpoint = mounted.endpoint.clone();
        let enabled = |kind: TransportKind| mounted.options.offers(kind);
        let method = request.method().clone();
        let token = query_value(request.uri().query(), "id").map(str::to_owned);
        let (is_upgrade, wants_events) = {
            let header_has = |name: header::HeaderName, needle: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
            };
            (
                method == Method::GET && header_has(header::UPGRADE, "websocket"),
                method == Method::GET && header_has(header::ACCEPT, "text/event-stream"),
            )
        };
        let requested = if is_upgrade {
            TransportKind::WebSockets
        } else if wants_events {
            TransportKind::ServerSentEvents
        } else {
            TransportKind::LongPolling
        };

        // WebSockets may skip negotiation.
        let Some(token) = token else {
            if is_upgrade {
                if !enabled(TransportKind::WebSockets) {
                    return not_enabled(TransportKind::WebSockets);
                }
                let Some(admission) = admit(&self.inner.limit, &mounted.limit) else {
                    return server_full();
                };
                let Ok(slot) = user_slot(mounted, &request, &user) else {
                    return auth::too_many_for_user();
                };
                let on_end = move || drop((admission, slot));
                return websocket::upgrade(
                    &mut request,
                    endpoint,
                    (ConnectionId::generate(), user),
                    Vec::new(),
                    on_end,
                );
            }
            return body::text(StatusCode::BAD_REQUEST, wire::CONNECTION_ID_REQUIRED);
        };

        match self.inner.registry.lookup(&token, index) {
            Lookup::NotFound | Lookup::OtherHub => {
                body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID)
            }
            Lookup::Ended if method == Method::GET && !is_upgrade && !wants_events => {
                body::text(StatusCode::NO_CONTENT, "")
            }
            Lookup::Ended => body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID),
            Lookup::Resumable(resume)
                if resume.user_id() != user.as_deref().and_then(hubs_core::User::id) =>
            {
                // Another user's credential on a running connection.
                body::text(StatusCode::FORBIDDEN, "")
            }
            Lookup::Resumable(resume) => match (&method, is_upgrade) {
                // The client is back with a new socket: the relay resumes the connection.
                (&Method::GET, true) => match websocket::accept(&mut request, endpoint.options()) {
                    Ok((response, socket)) => {
                        tokio::spawn(async move {
                            if let Some(socket) = socket.await
                                && !resume.attach(socket)
                            {
                                tracing::debug!("a resumed socket came after its connection ended");
                            }
                        });
                        response
                    }
                    Err(refused) => refused,
                },
                (&Method::POST, _) => {
                    body::text(StatusCode::METHOD_NOT_ALLOWED, wire::POST_TO_WEBSOCKET)
                }
                (&Method::DELETE, _) => {
                    body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED)
                }
                (&Method::GET, false) => {
                    body::text(StatusCode::BAD_REQUEST, wire::TRANSPORT_CHANGED)
                }
                _ => body::text(StatusCode::METHOD_NOT_ALLOWED, ""),
            },
            Lookup::Negotiated(connection_id, stateful) => {
                if method == Method::DELETE {
                    return body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED);
                }
                if method == Method::POST {
                    // Before the transport: kept for it, as the official server does.
                    let max = http_transport::max_post(endpoint.options());
                    let bytes = match http_transport::read_body(request.into_body(), max).await {
                        Ok(bytes) => bytes,
                        Err(refused) => return refused,
                    };
                    return match self.inner.registry.post_early(&token, bytes, max) {
                        Posted::Kept => body::empty_ok(),
                        Posted::TooLarge => http_transport::payload_too_large(),
                        Posted::NotWaiting => {
                            body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID)
                        }
                    };
                }
                if method != Method::GET {
                    return body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID);
                }
                if !enabled(requested) {
                    return not_enabled(requested);
                }
                let Some(admission) = admit(&self.inner.limit, &mounted.limit) else {
                    return server_full();
                };
                let Ok(slot) = user_slot(mounted, &request, &user) else {
                    return auth::too_many_for_user();
                };
                let service = self.clone();
                let ended_token = token.clone();
                let on_end = move || {
                    drop((admission, slot));
                    service.inner.registry.ended(&ended_token);
                };
                if is_upgrade && stateful {
                    return self.upgrade_stateful(
                        &mut request,
                        endpoint,
                        &token,
                        (connection_id, user),
                        on_end,
                    );
                }
                if is_upgrade {
                    let Some(early) = self.inner.registry.attach_websocket(&token, None) else {
                        return body::text(StatusCode::CONFLICT, "");
                    };
                    return websocket::upgrade(
                        &mut request,
                        endpoint,
                        (connection_id, user),
                        early,
                        on_end,
                    );
                }
                let hub_request =
                    hubs_core::Request::owned(request.uri(), request.headers()).with_user(user);
                let Some(connection) = self.inner.registry.attach_http(&token, |early| {
                    HttpConnection::start(
                        endpoint,
                        connection_id,
                        hub_request,
                        requested,
                        early,
                        on_end,
                    )
                }) else {
                    return body::text(StatusCode::CONFLICT, "");
                };
                if wants_events {
                    connection.event_stream()
                } else {
                    http_transport::first_poll()
                }
            }
            Lookup::Http(connection)
                if connection.user_id() != user.as_deref().and_then(hubs_core::User::id) =>
            {
                // Another user's credential on a running connection.
                body::text(StatusCode::FORBIDDEN, "")
            }
            found @ (Lookup::WebSocket | Lookup::Http(_)) => {
                let current = found.transport();
                match (&method, found) {
                    (&Method::POST, Lookup::Http(connection)) => {
                        connection.post(request.into_body()).await
                    }
                    (&Method::POST, _) => {
                        body::text(StatusCode::METHOD_NOT_ALLOWED, wire::POST_TO_WEBSOCKET)
                    }
                    (&Method::DELETE, Lookup::Http(connection))
                        if connection.transport() == TransportKind::LongPolling =>
                    {
                        connection.delete()
                    }
                    (&Method::DELETE, _) => {
                        body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED)
                    }
                    (&Method::GET, found) if current == Some(requested) => match found {
                        Lookup::Http(connection) if requested == TransportKind::LongPolling => {
                            connection.poll(mounted.options.poll_timeout()).await
                        }
                        // A second WebSocket or event stream on a live connection.
                        _ => body::text(StatusCode::CONFLICT, ""),
                    },
                    (&Method::GET, _) => {
                        body::text(StatusCode::BAD_REQUEST, wire::TRANSPORT_CHANGED)
                    }
                    _ => body::text(StatusCode::METHOD_NOT_ALLOWED, ""),
                }
            }
        }
    }

    /// A WebSocket for a connection negotiated with stateful reconnect: its relay is
    /// registered so that the client's next socket resumes it.
    fn upgrade_stateful<B: Send + 'static>(
        &self,
        request: &mut Request<B>,
        endpoint: std::sync::Arc<dyn hubs_core::HubEndpoint>,
        token: &str,
        (connection_id, user): (ConnectionId, Option<std::sync::Arc<hubs_core::User>>),
        on_end: impl FnOnce() + Send + 'static,
    ) -> Response<Body> {
        let (response, socket) = match websocket::accept(request, endpoint.options()) {
            Ok(accepted) => accepted,
            Err(refused) => {
                on_end();
                return refused;
            }
        };
        let hub_request =
            hubs_core::Request::owned(request.uri(), request.headers()).with_user(user);
        let (resume, run) = stateful::start(endpoint, connection_id, hub_request);
        let Some(early) = self.inner.registry.attach_websocket(token, Some(resume)) else {
            on_end();
            return body::text(StatusCode::CONFLICT, "");
        };
        tokio::spawn(async move {
            if let Some(socket) = socket.await {
                run(socket, early).await;
            }
            on_end();
        });
        response
    }

    fn negotiate(&self, index: usize, mounted: &Mounted, query: Option<&str>) -> Response<Body> {
        if self.inner.limit.is_full() || mounted.limit.is_full() {
            return server_full();
        }
        let version = match negotiate::requested_version(query) {
            Ok(version) => version,
            Err(text) => return body::json(negotiate::error(&text)),
        };
        let connection_id = ConnectionId::generate();
        let token = if version >= 1 {
            ConnectionId::generate().to_string()
        } else {
            connection_id.to_string()
        };
        // Stateful reconnect needs a token the client presents again (negotiate v1).
        let stateful = version >= 1
            && negotiate::wants_stateful_reconnect(query)
            && mounted.endpoint.options().stateful_reconnect().is_some();
        let response = negotiate::response(
            version,
            connection_id.as_str(),
            &token,
            &mounted.options,
            stateful,
        );
        match self
            .inner
            .registry
            .negotiated(token, connection_id, index, stateful)
        {
            Ok(()) => body::json(response),
            Err(TooManyPending) => {
                tracing::warn!(
                    "negotiate refused: too many negotiated connections wait for their transport"
                );
                body::text(StatusCode::SERVICE_UNAVAILABLE, wire::TOO_MANY_PENDING)
            }
        }
    }
}

/// The user id a connection opened by `request` gets.
fn user_id<B>(
    mounted: &Mounted,
    request: &Request<B>,
    user: &Option<std::sync::Arc<hubs_core::User>>,
) -> Option<String> {
    let view = hubs_core::Request::new(request.uri().clone(), request.headers().clone())
        .with_user(user.clone());
    mounted.endpoint.options().user_id_of(&view)
}

/// The connection's place among its user's (`max_connections_per_user`), or `429`.
fn user_slot<B>(
    mounted: &Mounted,
    request: &Request<B>,
    user: &Option<std::sync::Arc<hubs_core::User>>,
) -> Result<Option<crate::limits::UserSlot>, TooManyForUser> {
    let Some(users) = &mounted.users else {
        return Ok(None);
    };
    let Some(id) = user_id(mounted, request, user) else {
        return Ok(None);
    };
    users.try_acquire(&id).map(Some).ok_or(TooManyForUser)
}

/// The user runs as many connections as the endpoint allows.
struct TooManyForUser;

/// `401` with an empty body when the hub checks requests and this one fails.
fn unauthorized<B>(options: &EndpointOptions, request: &Request<B>) -> Option<Response<Body>> {
    if !options.checks_requests() {
        return None;
    }
    let checked = hubs_core::Request::new(request.uri().clone(), request.headers().clone());
    (!options.authorizes(&checked)).then(|| body::text(StatusCode::UNAUTHORIZED, ""))
}

fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `503`: the server or the endpoint has as many connections as it takes.
fn server_full() -> Response<Body> {
    static WARNINGS: std::sync::OnceLock<hubs_core::Throttle> = std::sync::OnceLock::new();
    if let Some(count) = WARNINGS.get_or_init(hubs_core::Throttle::new).allow() {
        tracing::warn!(count, "connection limit reached: new connections get 503");
    }
    body::text(StatusCode::SERVICE_UNAVAILABLE, wire::SERVER_FULL)
}

fn not_enabled(kind: TransportKind) -> Response<Body> {
    body::text(
        StatusCode::NOT_FOUND,
        wire::transport_not_supported(kind.name()),
    )
}
