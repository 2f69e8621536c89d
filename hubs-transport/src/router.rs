//! Routing one HTTP request: negotiate, the three transports, and the official status
//! codes and texts for everything else (protocol.md §3.1).

use http::{Method, Request, Response, StatusCode, header};
use hubs_core::{ConnectionId, TransportKind, wire};

use crate::body::{self, Body};
use crate::http_transport::{self, HttpConnection};
use crate::negotiate;
use crate::options::EndpointOptions;
use crate::registry::Lookup;
use crate::service::HubService;
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
            return self.negotiate(index, &mounted.options, request.uri().query());
        }
        let Some((index, mounted)) = self.find(&path) else {
            return body::text(StatusCode::NOT_FOUND, "");
        };
        if let Some(refused) = unauthorized(&mounted.options, &request) {
            return refused;
        }
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
                return websocket::upgrade(&mut request, endpoint, ConnectionId::generate(), || {});
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
            Lookup::Negotiated(connection_id) => {
                if method == Method::DELETE {
                    return body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED);
                }
                if method != Method::GET {
                    return body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID);
                }
                if !enabled(requested) {
                    return not_enabled(requested);
                }
                let service = self.clone();
                let ended_token = token.clone();
                let on_end = move || service.inner.registry.ended(&ended_token);
                if is_upgrade {
                    if !self.inner.registry.attach_websocket(&token) {
                        return body::text(StatusCode::CONFLICT, "");
                    }
                    return websocket::upgrade(&mut request, endpoint, connection_id, on_end);
                }
                let hub_request =
                    hubs_core::Request::new(request.uri().clone(), request.headers().clone());
                let connection =
                    HttpConnection::start(endpoint, connection_id, hub_request, requested, on_end);
                if !self.inner.registry.attach_http(&token, connection.clone()) {
                    return body::text(StatusCode::CONFLICT, "");
                }
                if wants_events {
                    connection.event_stream()
                } else {
                    http_transport::first_poll()
                }
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

    fn negotiate(
        &self,
        index: usize,
        options: &EndpointOptions,
        query: Option<&str>,
    ) -> Response<Body> {
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
        let response = negotiate::response(version, connection_id.as_str(), &token, options);
        self.inner.registry.negotiated(token, connection_id, index);
        body::json(response)
    }
}

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

fn not_enabled(kind: TransportKind) -> Response<Body> {
    body::text(
        StatusCode::NOT_FOUND,
        wire::transport_not_supported(kind.name()),
    )
}
