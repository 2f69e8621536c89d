//! What the routing steps read of a request (its head, what it asks for) and the answers
//! they share: the user, and the official refusals.

use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use hubs_core::{TransportKind, User, wire};

use crate::auth;
use crate::body::{self, Body};
use crate::options::EndpointOptions;
use crate::service::Mounted;

/// The user a request authenticated as (`None`: anonymous).
pub(crate) type MaybeUser = Option<Arc<User>>;

/// What routing reads of a request besides its body: borrowed apart from the body, so
/// that a step may hold it across a wait (the body need not be `Sync`).
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
}

impl<'a> Head<'a> {
    pub(crate) fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
        }
    }

    /// The request as the hub's checks read it.
    pub(crate) fn view(self) -> hubs_core::Request {
        hubs_core::Request::new(self.uri.clone(), self.headers.clone())
    }
}

/// What a transport's request asks for.
pub(crate) struct Asked {
    pub(crate) method: Method,
    /// The connection token (`id` in the query).
    pub(crate) token: Option<String>,
    /// A WebSocket upgrade (a GET).
    pub(crate) upgrade: bool,
    /// An event stream (a GET that accepts `text/event-stream`).
    pub(crate) events: bool,
    /// The transport the request is for.
    pub(crate) transport: TransportKind,
}

impl Asked {
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        let method = request.method().clone();
        let header_has = |name: header::HeaderName, needle: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
        };
        let upgrade = method == Method::GET && header_has(header::UPGRADE, "websocket");
        let events = method == Method::GET && header_has(header::ACCEPT, "text/event-stream");
        let transport = if upgrade {
            TransportKind::WebSockets
        } else if events {
            TransportKind::ServerSentEvents
        } else {
            TransportKind::LongPolling
        };
        Self {
            token: query_value(request.uri().query(), "id").map(str::to_owned),
            method,
            upgrade,
            events,
            transport,
        }
    }

    /// A long poll.
    pub(crate) fn is_poll(&self) -> bool {
        self.method == Method::GET && !self.upgrade && !self.events
    }
}

/// Why a new connection gets no place.
pub(crate) enum Full {
    /// The server or the endpoint runs as many connections as it takes.
    Server,
    /// The user runs as many connections as the endpoint allows.
    User,
}

impl Full {
    /// `503` or `429`, with the official texts.
    pub(crate) fn response(self) -> Response<Body> {
        match self {
            Self::Server => server_full(),
            Self::User => auth::too_many_for_user(),
        }
    }
}

/// The request's user, once the endpoint's `authorize` check passes (`401` otherwise):
/// what [`auth::identify`] finds.
pub(crate) async fn identify(
    mounted: &Mounted,
    head: Head<'_>,
) -> Result<MaybeUser, Response<Body>> {
    if let Some(refused) = unauthorized(&mounted.options, head) {
        return Err(refused);
    }
    auth::identify(mounted, head.uri, head.headers).await
}

/// The user id a connection opened by the request gets.
pub(crate) fn user_id(mounted: &Mounted, head: Head<'_>, user: &MaybeUser) -> Option<String> {
    let view = head.view().with_user(user.clone());
    mounted.endpoint.options().user_id_of(&view)
}

/// `401` with an empty body when the hub checks requests and this one fails.
fn unauthorized(options: &EndpointOptions, head: Head<'_>) -> Option<Response<Body>> {
    if !options.checks_requests() {
        return None;
    }
    (!options.authorizes(&head.view())).then(|| body::text(StatusCode::UNAUTHORIZED, ""))
}

pub(crate) fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `404`: no connection runs under the token.
pub(crate) fn no_connection() -> Response<Body> {
    body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID)
}

/// `503`: the server or the endpoint has as many connections as it takes.
pub(crate) fn server_full() -> Response<Body> {
    static WARNINGS: std::sync::OnceLock<hubs_core::Throttle> = std::sync::OnceLock::new();
    if let Some(count) = WARNINGS.get_or_init(hubs_core::Throttle::new).allow() {
        tracing::warn!(count, "connection limit reached: new connections get 503");
    }
    body::text(StatusCode::SERVICE_UNAVAILABLE, wire::SERVER_FULL)
}

pub(crate) fn not_enabled(kind: TransportKind) -> Response<Body> {
    body::text(
        StatusCode::NOT_FOUND,
        wire::transport_not_supported(kind.name()),
    )
}
