//! Routing one HTTP request: negotiate, the three transports, and the official status
//! codes and texts for everything else (protocol.md §3.1).
//!
//! [`HubService::route`] only dispatches, to one step per kind of request: `negotiate`;
//! `admit` (the hub, the endpoint's check, the user) for every transport request; then
//! `connect_unnegotiated` (no token: a WebSocket that skips negotiate),
//! `websocket_request` (an upgrade for a token) or `http_request` (the rest: event
//! streams, long polls, POST and DELETE).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hubs_core::{ConnectionId, TransportKind, User, wire};

use crate::auth;
use crate::body::{self, Body};
use crate::http_transport::{self, HttpLink};
use crate::limits::{self, Admission, UserSlot};
use crate::negotiate;
use crate::registry::{Evicted, Lookup, Posted};
use crate::service::{HubService, Mounted};
use crate::stateful;
use crate::websocket;

mod refresh;
mod request;

use request::{
    Asked, Full, Head, MaybeUser, identify, no_connection, not_enabled, server_full, user_id,
};

impl HubService {
    /// Answers a request on a hub's path (CORS aside): each kind of request has its step.
    pub(crate) async fn route<B>(&self, mut request: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_owned();
        #[cfg(feature = "rest")]
        if let Some(api) = &self.inner.rest
            && crate::rest::is_api(&path)
        {
            let find = |path: &str| self.find(path).map(|(_, m)| m.endpoint.clone());
            return crate::rest::answer(api, find, request).await;
        }
        let lower = path.trim_end_matches('/').to_ascii_lowercase();
        if let Some(hub_path) = lower.strip_suffix("/negotiate") {
            return self.negotiate(hub_path, Head::of(&request)).await;
        }
        if let Some(hub_path) = lower.strip_suffix("/refresh")
            && self.find(&path).is_none()
        {
            return self.refresh(hub_path, Head::of(&request)).await;
        }
        let asked = Asked::of(&request);
        // A long poll whose credential expired, on a hub that refreshes, from a client that
        // refreshes when told: 409, and the client refreshes, then polls again.
        let told_refreshes = asked.is_poll() && hubs_core::refreshes_on_conflict(request.headers());
        let refresh_required =
            |service: &Self| told_refreshes && service.credential_expired(&path, &asked);
        let (index, mounted, user) = match self.admit(&path, Head::of(&request)).await {
            Ok(admitted) => admitted,
            Err(_) if refresh_required(self) => return refresh::refresh_required(),
            Err(refused) => return refused,
        };
        let Some(token) = asked.token.as_deref() else {
            return self.connect_unnegotiated(&mut request, mounted, user, &asked);
        };
        let found = match self.inner.registry.lookup(token, index) {
            Lookup::NotFound | Lookup::OtherHub => return no_connection(),
            Lookup::Closed if asked.is_poll() => return body::text(StatusCode::NO_CONTENT, ""),
            Lookup::Closed => return no_connection(),
            // Another user's credential on a running connection.
            found if found.runs_for_another(user.as_deref().and_then(User::id)) => {
                return body::text(StatusCode::FORBIDDEN, "");
            }
            found => found,
        };
        if refresh_required(self) {
            return refresh::refresh_required();
        }
        if asked.upgrade
            && let (Lookup::Resumable(_), Some(user)) = (&found, &user)
            && let Err(refused) = self.refresh_on_resume(index, mounted, token, user).await
        {
            return refused;
        }
        if asked.upgrade {
            self.websocket_request(&mut request, found, mounted, token, user)
        } else {
            let poll_timeout = self.poll_timeout(index, mounted, token, told_refreshes);
            self.http_request(
                request,
                found,
                mounted,
                (token, user),
                (&asked, poll_timeout),
            )
            .await
        }
    }

    /// `POST {hub}/negotiate`: a new connection's id and token, and the transports on
    /// offer.
    async fn negotiate(&self, hub_path: &str, head: Head<'_>) -> Response<Body> {
        let Some((index, mounted)) = self.find(hub_path) else {
            return body::text(StatusCode::NOT_FOUND, "");
        };
        if *head.method != Method::POST {
            return body::text(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let user = match identify(mounted, head).await {
            Ok(user) => user,
            Err(refused) => return refused,
        };
        if let Some(users) = &mounted.users
            && let Some(id) = user_id(mounted, head, &user)
            && users.is_full(&id)
        {
            return auth::too_many_for_user();
        }
        // With authentication refresh, the client learns when to refresh.
        let lifetime = user
            .as_deref()
            .filter(|_| mounted.endpoint.options().refreshes_authentication())
            .and_then(hubs_core::token_lifetime_seconds);
        self.issue(index, mounted, head.uri.query(), lifetime)
    }

    /// How long a long poll is held: the endpoint's poll timeout, or, for a client that
    /// refreshes when told (`refreshes`), no later than its credential's expiry. The poll
    /// is then answered empty, the next one gets 409 and the client refreshes; nothing
    /// reaches the connection while its credential is expired.
    fn poll_timeout(
        &self,
        index: usize,
        mounted: &Mounted,
        token: &str,
        refreshes: bool,
    ) -> std::time::Duration {
        let timeout = mounted.options.poll_timeout();
        if !refreshes || !mounted.endpoint.options().refreshes_authentication() {
            return timeout;
        }
        self.inner
            .registry
            .running(token, index)
            .and_then(|id| mounted.endpoint.credential_expires_at(&id))
            .map_or(timeout, |at| {
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                    .min(timeout)
            })
    }

    /// Whether `asked` (a long poll) is for a running connection of a hub that refreshes
    /// whose credential has expired.
    fn credential_expired(&self, path: &str, asked: &Asked) -> bool {
        let (Some((index, mounted)), Some(token)) = (self.find(path), asked.token.as_deref())
        else {
            return false;
        };
        mounted.endpoint.options().refreshes_authentication()
            && self
                .inner
                .registry
                .running(token, index)
                .is_some_and(|id| mounted.endpoint.credential_expired(&id))
    }

    /// A stateful reconnect presents a credential: on a hub that refreshes, the same
    /// policy as a refresh applies (a rejected one refuses the reconnect with 403).
    async fn refresh_on_resume(
        &self,
        index: usize,
        mounted: &Mounted,
        token: &str,
        user: &Arc<User>,
    ) -> Result<(), Response<Body>> {
        if !mounted.endpoint.options().refreshes_authentication() {
            return Ok(());
        }
        let Some(id) = self.inner.registry.running(token, index) else {
            return Ok(());
        };
        match mounted
            .endpoint
            .clone()
            .refresh_authentication(id, user.clone())
            .await
        {
            Err(hubs_core::RefreshRefused::Rejected) => Err(refresh::rejected()),
            _ => Ok(()),
        }
    }

    /// A transport's request reaches a hub: the hub mounted at `path` (its index and
    /// mount) and the request's user, or the refusal (`404`, `401`, `403`).
    async fn admit(
        &self,
        path: &str,
        head: Head<'_>,
    ) -> Result<(usize, &Mounted, MaybeUser), Response<Body>> {
        let Some((index, mounted)) = self.find(path) else {
            return Err(body::text(StatusCode::NOT_FOUND, ""));
        };
        let user = identify(mounted, head).await?;
        Ok((index, mounted, user))
    }

    /// A request without a connection token: only a WebSocket may skip negotiation.
    fn connect_unnegotiated<B: Send + 'static>(
        &self,
        request: &mut Request<B>,
        mounted: &Mounted,
        user: MaybeUser,
        asked: &Asked,
    ) -> Response<Body> {
        if !asked.upgrade {
            return body::text(StatusCode::BAD_REQUEST, wire::CONNECTION_ID_REQUIRED);
        }
        if !mounted.options.offers(TransportKind::WebSockets) {
            return not_enabled(TransportKind::WebSockets);
        }
        let places = match self.places(mounted, Head::of(request), &user) {
            Ok(places) => places,
            Err(full) => return full.response(),
        };
        let on_close = move || drop(places);
        websocket::upgrade(
            request,
            mounted.endpoint.clone(),
            (ConnectionId::generate(), user),
            Vec::new(),
            on_close,
        )
    }

    /// A WebSocket upgrade for a negotiated token: the connection's first socket, or a
    /// stateful connection's next one.
    fn websocket_request<B: Send + 'static>(
        &self,
        request: &mut Request<B>,
        found: Lookup,
        mounted: &Mounted,
        token: &str,
        user: MaybeUser,
    ) -> Response<Body> {
        match found {
            // The client is back with a new socket: the relay resumes the connection.
            Lookup::Resumable(resume) => {
                match websocket::accept(request, mounted.endpoint.options()) {
                    Ok((response, socket)) => {
                        tokio::spawn(async move {
                            if let Some(socket) = socket.await
                                && !resume.attach(socket)
                            {
                                tracing::debug!(
                                    "a resumed socket came after its connection closed"
                                );
                            }
                        });
                        response
                    }
                    Err(refused) => refused,
                }
            }
            Lookup::Negotiated(connection_id, stateful) => {
                if !mounted.options.offers(TransportKind::WebSockets) {
                    return not_enabled(TransportKind::WebSockets);
                }
                let on_close = match self.hold(Head::of(request), mounted, &user, token) {
                    Ok(on_close) => on_close,
                    Err(full) => return full.response(),
                };
                let endpoint = mounted.endpoint.clone();
                if stateful {
                    return self.upgrade_stateful(
                        request,
                        endpoint,
                        token,
                        (connection_id, user),
                        on_close,
                    );
                }
                let Some(early) = self.inner.registry.attach_websocket(token, None) else {
                    return body::text(StatusCode::CONFLICT, "");
                };
                websocket::upgrade(request, endpoint, (connection_id, user), early, on_close)
            }
            // A second WebSocket on a live connection.
            Lookup::WebSocket => body::text(StatusCode::CONFLICT, ""),
            Lookup::Http(_) => body::text(StatusCode::BAD_REQUEST, wire::TRANSPORT_CHANGED),
            Lookup::NotFound | Lookup::OtherHub | Lookup::Closed => no_connection(),
        }
    }

    /// A request for a negotiated token that is not an upgrade: the first GET starts an
    /// event stream or long polling; then POSTs carry the client's messages, GETs poll,
    /// and a DELETE closes long polling.
    async fn http_request<B>(
        &self,
        request: Request<B>,
        found: Lookup,
        mounted: &Mounted,
        (token, user): (&str, MaybeUser),
        (asked, poll_timeout): (&Asked, std::time::Duration),
    ) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match found {
            Lookup::Negotiated(connection_id, _) => {
                self.start_http(request, mounted, token, (connection_id, user), asked)
                    .await
            }
            Lookup::Http(link) => match asked.method {
                Method::POST => link.post(request.into_body()).await,
                Method::DELETE if link.transport() == TransportKind::LongPolling => link.delete(),
                Method::DELETE => body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED),
                Method::GET if link.transport() != asked.transport => {
                    body::text(StatusCode::BAD_REQUEST, wire::TRANSPORT_CHANGED)
                }
                Method::GET if asked.transport == TransportKind::LongPolling => {
                    link.poll(poll_timeout).await
                }
                // A second event stream on a live connection.
                Method::GET => body::text(StatusCode::CONFLICT, ""),
                _ => body::text(StatusCode::METHOD_NOT_ALLOWED, ""),
            },
            Lookup::Resumable(_) | Lookup::WebSocket => match asked.method {
                Method::POST => body::text(StatusCode::METHOD_NOT_ALLOWED, wire::POST_TO_WEBSOCKET),
                Method::DELETE => body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED),
                Method::GET => body::text(StatusCode::BAD_REQUEST, wire::TRANSPORT_CHANGED),
                _ => body::text(StatusCode::METHOD_NOT_ALLOWED, ""),
            },
            Lookup::NotFound | Lookup::OtherHub | Lookup::Closed => no_connection(),
        }
    }

    /// The first request of a negotiated connection that is not an upgrade: a GET starts
    /// its event stream or long polling; a POST that comes first is kept for it.
    async fn start_http<B>(
        &self,
        request: Request<B>,
        mounted: &Mounted,
        token: &str,
        (connection_id, user): (ConnectionId, MaybeUser),
        asked: &Asked,
    ) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if asked.method == Method::DELETE {
            return body::text(StatusCode::BAD_REQUEST, wire::DELETE_NOT_ALLOWED);
        }
        if asked.method == Method::POST {
            return self.post_early(request.into_body(), mounted, token).await;
        }
        if asked.method != Method::GET {
            return no_connection();
        }
        if !mounted.options.offers(asked.transport) {
            return not_enabled(asked.transport);
        }
        let on_close = match self.hold(Head::of(&request), mounted, &user, token) {
            Ok(on_close) => on_close,
            Err(full) => return full.response(),
        };
        let endpoint = mounted.endpoint.clone();
        let hub_request =
            hubs_core::Request::owned(request.uri(), request.headers()).with_user(user);
        let Some(link) = self.inner.registry.attach_http(token, |early| {
            HttpLink::start(
                endpoint,
                connection_id,
                hub_request,
                asked.transport,
                early,
                on_close,
            )
        }) else {
            return body::text(StatusCode::CONFLICT, "");
        };
        if asked.events {
            link.event_stream()
        } else {
            http_transport::first_poll()
        }
    }

    /// A POST before the transport: kept for it, as the official server does.
    async fn post_early<B>(&self, content: B, mounted: &Mounted, token: &str) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let max = http_transport::max_post(mounted.endpoint.options());
        let bytes = match http_transport::read_body(content, max).await {
            Ok(bytes) => bytes,
            Err(refused) => return refused,
        };
        match self.inner.registry.post_early(token, bytes, max) {
            Posted::Kept => body::empty_ok(),
            Posted::TooLarge => http_transport::payload_too_large(),
            Posted::NotWaiting => no_connection(),
        }
    }

    /// Takes the places of a negotiated connection about to start. The callback returned
    /// is for the connection's close: it gives the places back and remembers the token as
    /// closed.
    fn hold(
        &self,
        head: Head<'_>,
        mounted: &Mounted,
        user: &MaybeUser,
        token: &str,
    ) -> Result<impl FnOnce() + Send + 'static, Full> {
        let places = self.places(mounted, head, user)?;
        let service = self.clone();
        let closed_token = token.to_owned();
        Ok(move || {
            drop(places);
            service.inner.registry.closed(&closed_token);
        })
    }

    /// A new connection's places: on the server and its endpoint, and among its user's
    /// (`max_connections_per_user`). Given back when dropped.
    fn places(
        &self,
        mounted: &Mounted,
        head: Head<'_>,
        user: &MaybeUser,
    ) -> Result<(Admission, Option<UserSlot>), Full> {
        let Some(admission) = limits::admit(&self.inner.limit, &mounted.limit) else {
            return Err(Full::Server);
        };
        let Some(users) = &mounted.users else {
            return Ok((admission, None));
        };
        let Some(id) = user_id(mounted, head, user) else {
            return Ok((admission, None));
        };
        match users.try_acquire(&id) {
            Some(slot) => Ok((admission, Some(slot))),
            None => Err(Full::User),
        }
    }

    /// A WebSocket for a connection negotiated with stateful reconnect: its relay is
    /// registered so that the client's next socket resumes it.
    fn upgrade_stateful<B: Send + 'static>(
        &self,
        request: &mut Request<B>,
        endpoint: Arc<dyn hubs_core::HubEndpoint>,
        token: &str,
        (connection_id, user): (ConnectionId, MaybeUser),
        on_close: impl FnOnce() + Send + 'static,
    ) -> Response<Body> {
        let (response, socket) = match websocket::accept(request, endpoint.options()) {
            Ok(accepted) => accepted,
            Err(refused) => {
                on_close();
                return refused;
            }
        };
        let hub_request =
            hubs_core::Request::owned(request.uri(), request.headers()).with_user(user);
        let (resume, run) = stateful::start(endpoint, connection_id, hub_request);
        let Some(early) = self.inner.registry.attach_websocket(token, Some(resume)) else {
            on_close();
            return body::text(StatusCode::CONFLICT, "");
        };
        tokio::spawn(async move {
            if let Some(socket) = socket.await {
                run(socket, early).await;
            }
            on_close();
        });
        response
    }

    /// Registers a new negotiated connection and answers negotiate with its id and token.
    fn issue(
        &self,
        index: usize,
        mounted: &Mounted,
        query: Option<&str>,
        token_lifetime: Option<u64>,
    ) -> Response<Body> {
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
            token_lifetime,
        );
        // At the cap this evicts the oldest unused negotiation (counted and logged there).
        let Evicted(_) = self
            .inner
            .registry
            .negotiated(token, connection_id, index, stateful);
        body::json(response)
    }
}

#[cfg(test)]
mod tests;
