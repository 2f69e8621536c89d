//! The interop test hub (`TestHub` at `/testhub`), as the team's interop contract
//! describes it, for the official SignalR clients' end-to-end tests.

pub mod cli;
mod complex;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use hubs::auth::AuthenticationRefresh;
use hubs::{
    BuildError, CancellationToken, Context, Cors, EndpointOptions, HubError, HubOptions, Server,
    Stream, TransportKind, UploadStream, hub,
};
use serde::{Deserialize, Serialize};

pub use complex::ComplexObject;

/// The hub the official client tests call.
#[derive(Debug, Default)]
pub struct TestHub;

/// `{Name, Value}`, sent back with its PascalCase keys intact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomObject {
    /// A name.
    pub name: String,
    /// A value.
    pub value: i32,
}

/// The error `ThrowException` fails with; its type name is part of the wire text.
#[derive(Debug)]
pub struct InvalidOperationException(pub String);

impl fmt::Display for InvalidOperationException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidOperationException {}

#[hub]
impl TestHub {
    /// Returns the argument unchanged (`null` included).
    pub fn echo(&self, message: Option<String>) -> Option<String> {
        message
    }

    /// The caller's connection id.
    pub fn get_caller_connection_id(&self, cx: &Context<Self>) -> String {
        cx.connection_id().to_string()
    }

    /// `numRedirects` from the connection's query string.
    pub fn get_num_redirects(&self, cx: &Context<Self>) -> i32 {
        cx.request()
            .query("numRedirects")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Fails with `message`.
    pub fn throw_exception(&self, message: String) -> Result<(), InvalidOperationException> {
        Err(InvalidOperationException(message))
    }

    /// Calls `Message(message)` on the caller, then completes.
    pub async fn invoke_with_string(&self, cx: &Context<Self>, message: String) {
        let _ = cx.clients().caller().send("Message", (message,)).await;
    }

    /// Calls `CustomObject(customObject)` on the caller, then completes.
    pub async fn send_custom_object(&self, cx: &Context<Self>, custom_object: CustomObject) {
        let _ = cx
            .clients()
            .caller()
            .send("CustomObject", (custom_object,))
            .await;
    }

    /// Returns the object it got.
    pub fn echo_complex_object(&self, complex_object: ComplexObject) -> ComplexObject {
        complex_object
    }

    /// Returns a fixed object.
    pub fn send_complex_object(&self) -> ComplexObject {
        ComplexObject::sample()
    }

    /// `WebSockets`, `ServerSentEvents` or `LongPolling`.
    pub fn get_active_transport_name(&self, cx: &Context<Self>) -> &'static str {
        cx.transport().name()
    }

    /// The `Content-Type` header of the connection's request.
    pub fn get_content_type_header(&self, cx: &Context<Self>) -> Option<String> {
        cx.request().header("content-type").map(str::to_owned)
    }

    /// A header of the connection's request.
    pub fn get_header(&self, cx: &Context<Self>, header_name: String) -> Option<String> {
        cx.request().header(&header_name).map(str::to_owned)
    }

    /// A cookie of the connection's request.
    pub fn get_cookie(&self, cx: &Context<Self>, cookie_name: String) -> Option<String> {
        cx.request().cookie(&cookie_name).map(str::to_owned)
    }

    /// Adds the caller to a group.
    pub async fn join_group(&self, cx: &Context<Self>, group_name: String) {
        let _ = cx.groups().add(cx.connection_id(), &group_name).await;
    }

    /// Removes the caller from a group.
    pub async fn leave_group(&self, cx: &Context<Self>, group_name: String) {
        let _ = cx.groups().remove(cx.connection_id(), &group_name).await;
    }

    /// `GroupMessage(groupName, message)` to every member of the group.
    pub async fn send_to_group(&self, cx: &Context<Self>, group_name: String, message: String) {
        let _ = cx
            .clients()
            .group(&group_name)
            .send("GroupMessage", (&group_name, message))
            .await;
    }

    /// `OthersMessage(message)` to every connection but the caller.
    pub async fn send_to_others(&self, cx: &Context<Self>, message: String) {
        let _ = cx
            .clients()
            .others()
            .send("OthersMessage", (message,))
            .await;
    }

    /// `AllMessage(message)` to every connection.
    pub async fn send_to_all(&self, cx: &Context<Self>, message: String) {
        let _ = cx.clients().all().send("AllMessage", (message,)).await;
    }

    /// Yields `"a"`, `"b"`, `"c"`.
    pub fn stream(&self) -> impl Stream<Item = &'static str> + use<> {
        futures_util::stream::iter(["a", "b", "c"])
    }

    /// Completes at once.
    pub fn empty_stream(&self) -> impl Stream<Item = i32> + use<> {
        futures_util::stream::empty()
    }

    /// Never yields; when cancelled (by the client or the connection ending) it calls
    /// `StreamCanceled` on the caller.
    pub fn infinite_stream(
        &self,
        cx: &Context<Self>,
        cancel: CancellationToken,
    ) -> impl Stream<Item = String> + use<> {
        let caller = cx.clients().caller();
        tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = caller.send("StreamCanceled", ()).await;
        });
        futures_util::stream::pending()
    }

    /// Fails before producing a stream.
    pub fn stream_throw_exception(
        &self,
        message: String,
    ) -> Result<impl Stream<Item = i32> + use<>, InvalidOperationException> {
        Err::<futures_util::stream::Empty<i32>, _>(InvalidOperationException(message))
    }

    /// Concatenates an uploaded stream of strings.
    pub async fn streaming_concat(
        &self,
        mut parts: UploadStream<String>,
    ) -> Result<String, HubError> {
        let mut text = String::new();
        while let Some(part) = parts.next().await {
            text.push_str(&part?);
        }
        Ok(text)
    }

    /// A client result from inside a hub method: invokes `Result(value)` on the caller and
    /// returns what the client returned.
    pub async fn invoke_caller(
        &self,
        cx: &Context<Self>,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, HubError> {
        cx.clients().caller().invoke("Result", (value,)).await
    }

    /// EXT: a typed fan-out client result: asks `Result(groupName)` of every member of the
    /// group, on every server, for up to 5 s; the successful answers, sorted.
    pub async fn ask_group(
        &self,
        cx: &Context<Self>,
        group_name: String,
    ) -> Result<Vec<serde_json::Value>, HubError> {
        let answers = cx
            .clients()
            .group(group_name.clone())
            .invoke_each::<serde_json::Value, _>("Result", (group_name,))?
            .within(Duration::from_secs(5))
            .await;
        let mut values: Vec<serde_json::Value> = answers
            .into_iter()
            .filter_map(|(_, answer)| answer.ok())
            .collect();
        values.sort_by(compare_json);
        Ok(values)
    }

    /// EXT: presence: the connection ids in the group on every server, sorted.
    pub async fn group_members(&self, cx: &Context<Self>, group_name: String) -> Vec<String> {
        sorted_ids(cx.presence().group_members(&group_name).await)
    }

    /// EXT: presence: the connection ids of a user on every server, sorted.
    pub async fn user_connections(&self, cx: &Context<Self>, user_id: String) -> Vec<String> {
        sorted_ids(cx.presence().user_connections(&user_id).await)
    }

    /// EXT: ends a connection of this hub wherever it is; whether it existed.
    pub async fn kick(&self, cx: &Context<Self>, connection_id: String) -> bool {
        cx.presence().kick(&connection_id.into()).await
    }

    /// EXT: `GroupsMessage(message)` once to every connection in any of the groups.
    pub async fn send_to_groups(
        &self,
        cx: &Context<Self>,
        group_names: Vec<String>,
        message: String,
    ) {
        let _ = cx
            .clients()
            .groups(group_names)
            .send("GroupsMessage", (message,))
            .await;
    }
}

fn sorted_ids(ids: Vec<hubs::ConnectionId>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

/// Numbers by value, strings by text, anything else by its JSON text.
fn compare_json(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        _ => match (a.as_str(), b.as_str()) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => a.to_string().cmp(&b.to_string()),
        },
    }
}

/// A hub that cannot be set up for a connection, as the official test server's
/// `UncreatableHub` (whose constructor needs a service nobody registered). `hubs` checks
/// injected services when the server starts, so here the per-connection set-up in
/// `on_connected` is what fails; every client then gets a Close carrying the error.
#[derive(Debug, Default)]
pub struct UncreatableHub;

#[hub]
impl UncreatableHub {
    async fn on_connected(&self, _cx: &Context<Self>) -> Result<(), HubError> {
        Err(HubError::new(
            "Unable to resolve service for type 'Session' while attempting to activate 'UncreatableHub'.",
        ))
    }
}

/// The hub at `/authorizedhub`: every request needs a valid bearer JWT from
/// `/generateJwtToken` (see [`Tokens`]); `AdminOnly` needs the role `admin`; a connection
/// closes when its token expires, unless it refreshes it first (`POST
/// /authorizedhub/refresh`, the 11.0 client's `withAuthenticationRefresh()`), and a refresh
/// that adds the role `admin` opens `AdminOnly` to its next call.
#[derive(Debug, Default)]
pub struct HubWithAuthorization;

#[hub(authorize)]
impl HubWithAuthorization {
    /// Returns the argument unchanged.
    pub fn echo(&self, message: Option<String>) -> Option<String> {
        message
    }

    /// The caller's user id, as the server's default provider found it (the token's
    /// `sub`); no hub code reads the token.
    pub fn who_am_i(&self, cx: &Context<Self>) -> Option<String> {
        cx.user_identifier().map(str::to_owned)
    }

    /// `"admin"`, for callers with the role `admin`; everyone else gets the official
    /// per-method refusal and stays connected.
    #[hub(authorize(role = "admin"))]
    pub fn admin_only(&self) -> &'static str {
        "admin"
    }

    /// The caller's roles as of this call (an authentication refresh may change them).
    pub fn my_roles(&self, cx: &Context<Self>) -> Vec<String> {
        cx.user()
            .map(|user| user.roles().to_vec())
            .unwrap_or_default()
    }

    /// Adds the caller to a group (not in CONTRACT.md: for the refresh tests' senders).
    pub async fn join_group(&self, cx: &Context<Self>, group_name: String) -> Result<(), HubError> {
        cx.join(&group_name).await?;
        Ok(())
    }

    /// `GroupMessage(groupName, message)` to the group's members.
    pub async fn send_to_group(
        &self,
        cx: &Context<Self>,
        group_name: String,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients()
            .group(&group_name)
            .send("GroupMessage", (&group_name, message))
            .await?;
        Ok(())
    }

    /// `Message(message)` to one connection, by id.
    pub async fn send_to_connection(
        &self,
        cx: &Context<Self>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError> {
        cx.clients()
            .client(connection_id)
            .send("Message", (message,))
            .await?;
        Ok(())
    }
}

/// The JWTs `/generateJwtToken` issues and the hubs accept: HS256 with a key made at
/// start-up (or given with `--jwt-key`), validated with no clock skew.
#[derive(Clone)]
pub struct Tokens {
    issuer: hubs::auth::JwtIssuer,
    authenticator: hubs::auth::JwtAuthenticator,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Default for Tokens {
    /// A random key.
    fn default() -> Self {
        let key = format!(
            "{}{}",
            hubs::ConnectionId::generate(),
            hubs::ConnectionId::generate()
        );
        Self::with_key(key.as_bytes())
    }
}

impl Tokens {
    /// The default lifetime of a token.
    pub const LIFETIME: Duration = Duration::from_secs(60);

    /// Tokens signed with `key` (servers that share a backplane share a key).
    pub fn with_key(key: &[u8]) -> Self {
        Self {
            issuer: hubs::auth::JwtIssuer::hs256(key),
            authenticator: hubs::auth::JwtAuthenticator::hs256(key).leeway(Duration::ZERO),
        }
    }

    /// A token for `user` with `roles`, valid for `lifetime`.
    pub fn issue(&self, user: &str, roles: &[&str], lifetime: Duration) -> String {
        self.issuer.issue(user, roles, lifetime)
    }

    /// What validates them, for the hubs' endpoints.
    pub fn authenticator(&self) -> hubs::auth::JwtAuthenticator {
        self.authenticator.clone()
    }
}

/// `GET /generateJwtToken?user=&role=&lifetime=`: a token (see [`Tokens`]).
fn token_for(tokens: &Tokens, query: Option<&str>) -> String {
    let mut user = None;
    let mut roles = Vec::new();
    let mut lifetime = Tokens::LIFETIME;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "user" => user = Some(value.into_owned()),
            "role" => roles.push(value.into_owned()),
            "lifetime" => {
                if let Ok(seconds) = value.parse::<u64>() {
                    lifetime = Duration::from_secs(seconds.clamp(1, 3600));
                }
            }
            _ => {}
        }
    }
    let user = user.unwrap_or_else(|| hubs::ConnectionId::generate().to_string());
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    tokens.issue(&user, &roles, lifetime)
}

/// The raw connection endpoint at `/echo`: every message comes back unchanged.
pub async fn echo(mut connection: hubs::runtime::RawConnection) {
    while let Some(message) = connection.recv().await {
        if connection.send(message).await.is_err() {
            return;
        }
    }
}

/// Settings of the interop server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often the server pings an idle connection.
    pub keep_alive: Duration,
    /// How long a long poll is held without messages.
    pub long_poll_timeout: Duration,
    /// The tokens `/generateJwtToken` issues and `/authorizedhub` accepts.
    pub tokens: Tokens,
    /// Where `GET /metrics` reads from, if the process installed a recorder (see
    /// [`crate::metrics::install`]).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            long_poll_timeout: Duration::from_secs(90),
            tokens: Tokens::default(),
            metrics: None,
        }
    }
}

/// The hubs of the interop server: `TestHub` at `/testhub` (every transport) and at
/// `/testhub-nowebsockets` (Server-Sent Events and long polling only), with detailed
/// errors on (and stateful reconnect on `/testhub`), `HubWithAuthorization` at `/authorizedhub`, `UncreatableHub` at
/// `/uncreatable`, the raw [`echo`] endpoint at `/echo`,
/// and CORS open to any origin (with credentials), as the official test server.
pub fn server(settings: &Settings) -> Server {
    let options = hub_options(settings);
    common(settings)
        .hub_with_endpoint(
            "/testhub",
            TestHub,
            options
                .clone()
                .allow_stateful_reconnects(true)
                .authentication_refresh(AuthenticationRefresh::new()),
            endpoint(settings),
        )
        .hub_with_endpoint(
            "/testhub-nowebsockets",
            TestHub,
            options,
            no_websockets(settings),
        )
}

/// What every interop server has besides `TestHub`.
fn common(settings: &Settings) -> Server {
    let options = hub_options(settings);
    let tokens = settings.tokens.clone();
    Server::new()
        .cors(Cors::any())
        .hub_with_endpoint(
            "/authorizedhub",
            HubWithAuthorization,
            options
                .clone()
                .close_on_authentication_expiration(true)
                .authentication_refresh(AuthenticationRefresh::new()),
            endpoint(settings).authenticate(tokens.authenticator()),
        )
        .hub_with_endpoint(
            "/uncreatable",
            UncreatableHub,
            options.clone(),
            endpoint(settings),
        )
        .connection_handler_with("/echo", echo, options)
}

/// [`server`], with both hubs on a Redis backplane at `url`, so that several interop
/// servers share their clients.
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn server_with_redis(
    settings: &Settings,
    url: &str,
) -> Result<Server, hubs_redis::ConnectError> {
    let options = hub_options(settings);
    let redis = hubs_redis::RedisOptions::new(url).prefix("interop");
    let testhub = hubs_redis::RedisLifetimeManager::connect(redis.clone(), "testhub").await?;
    let other = hubs_redis::RedisLifetimeManager::connect(redis, "testhub-nowebsockets").await?;
    Ok(common(settings)
        .hub_with_endpoint(
            "/testhub",
            TestHub,
            options
                .clone()
                .allow_stateful_reconnects(true)
                .authentication_refresh(AuthenticationRefresh::new())
                .lifetime_manager(testhub),
            endpoint(settings),
        )
        .hub_with_endpoint(
            "/testhub-nowebsockets",
            TestHub,
            options.lifetime_manager(other),
            no_websockets(settings),
        ))
}

fn hub_options(settings: &Settings) -> HubOptions {
    HubOptions::default()
        .enable_detailed_errors(true)
        .keep_alive_interval(settings.keep_alive)
        // The token's `sub` when there is one; else `?user=` names the connection's user
        // (for the presence methods, UserConnections).
        .user_id(|request| {
            request
                .user()
                .and_then(hubs::User::id)
                .or_else(|| request.query("user"))
                .map(str::to_owned)
        })
}

/// A token is optional on every hub but `/authorizedhub`, which requires one.
fn endpoint(settings: &Settings) -> EndpointOptions {
    EndpointOptions::default()
        .long_poll_timeout(settings.long_poll_timeout)
        .authenticate(settings.tokens.authenticator())
}

fn no_websockets(settings: &Settings) -> EndpointOptions {
    endpoint(settings).transports([TransportKind::ServerSentEvents, TransportKind::LongPolling])
}

/// CORS on every path the example serves (the hubs', its own routes, error answers), as
/// the official test server: a page on another origin fetches its token, then connects.
async fn cors_everywhere(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let cors = Cors::any();
    if let Some(headers) = cors.preflight_headers(request.method(), request.headers()) {
        let mut response = axum::response::Response::new(axum::body::Body::empty());
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
        *response.headers_mut() = headers;
        return response;
    }
    let origin = request.headers().clone();
    let mut response = next.run(request).await;
    cors.add_headers(&origin, response.headers_mut());
    response
}

/// Sets the cookies the official test server sets on every negotiate response.
async fn negotiate_cookies(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let negotiate = request.uri().path().contains("/negotiate");
    let mut response = next.run(request).await;
    if negotiate {
        let headers = response.headers_mut();
        for cookie in [
            "testCookie=testValue; Path=/",
            "testCookie2=testValue2; Path=/",
            "expiredCookie=doesntmatter; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            headers.append(
                axum::http::header::SET_COOKIE,
                axum::http::HeaderValue::from_static(cookie),
            );
        }
    }
    response
}

/// `/redirect…`: sends the client on to `{baseUrl}/testHub?numRedirects={n}`, `n` counting
/// the redirects this server has handed out.
async fn redirect(
    axum::extract::State(count): axum::extract::State<Arc<AtomicU64>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> impl axum::response::IntoResponse {
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    let base = form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "baseUrl")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let body = serde_json::json!({ "url": format!("{base}/testHub?numRedirects={n}") }).to_string();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}

/// `/echoredirect…`: `302` to the same URL on `/echo…`.
async fn echo_redirect(uri: axum::http::Uri) -> impl axum::response::IntoResponse {
    let target = uri.to_string().replacen("echoredirect", "echo", 1);
    (
        axum::http::StatusCode::FOUND,
        [(axum::http::header::LOCATION, target)],
    )
}

/// `/bad-negotiate…`: a negotiate that fails with `400`.
async fn bad_negotiate() -> impl axum::response::IntoResponse {
    (
        axum::http::StatusCode::BAD_REQUEST,
        "Some response from server",
    )
}

/// The whole interop application: the hubs; `GET /clientresult/{connectionId}`, which
/// asks that connection for a client result through the hub context; `/generateJwtToken`;
/// `/redirect…`, `/echoredirect…` and `/bad-negotiate…`; the negotiate cookies. The hubs
/// are mounted in an axum router, as an application would.
///
/// # Errors
///
/// When the hubs cannot be built.
pub fn app(settings: &Settings) -> Result<axum::Router, BuildError> {
    router(settings, server(settings).build()?)
}

/// The interop application around built hubs (see [`app`]).
///
/// # Errors
///
/// When the hubs lack `TestHub`.
pub fn router(settings: &Settings, hubs: hubs::HubService) -> Result<axum::Router, BuildError> {
    let context = hubs
        .hub_context::<TestHub>()
        .ok_or_else(|| BuildError::DuplicatePath("/testhub".to_owned()))?;
    let client_result = move |axum::extract::Path(id): axum::extract::Path<String>| {
        let context = context.clone();
        async move {
            match context
                .clients()
                .client(id)
                .invoke::<i64, _>("Result", ())
                .await
            {
                Ok(value) => value.to_string(),
                Err(error) => error.message().to_owned(),
            }
        }
    };
    let redirects = Arc::new(AtomicU64::new(0));
    let tokens = settings.tokens.clone();
    let generate_token = move |uri: axum::http::Uri| {
        let token = token_for(&tokens, uri.query());
        async move { token }
    };
    let metrics = match &settings.metrics {
        Some(handle) => crate::metrics::router(handle.clone()),
        None => axum::Router::new(),
    };
    Ok(axum::Router::new()
        .merge(metrics)
        .route("/generateJwtToken", axum::routing::get(generate_token))
        .route("/echoredirect", axum::routing::any(echo_redirect))
        .route("/echoredirect/{*rest}", axum::routing::any(echo_redirect))
        .route("/bad-negotiate", axum::routing::any(bad_negotiate))
        .route("/bad-negotiate/{*rest}", axum::routing::any(bad_negotiate))
        .route("/redirect", axum::routing::any(redirect))
        .route("/redirect/{*rest}", axum::routing::any(redirect))
        .with_state(redirects)
        .route(
            "/clientresult/{connection_id}",
            axum::routing::get(client_result),
        )
        .fallback_service(hubs)
        .layer(axum::middleware::from_fn(negotiate_cookies))
        .layer(axum::middleware::from_fn(cors_everywhere)))
}
