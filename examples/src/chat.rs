//! The chat example: a typed hub (`ChatHub`, calling `ChatClient`) and a page written in
//! TypeScript against the module both generate (`examples/chat/src/generated/chat.ts`).
//!
//! It shows what no SignalR offers out of the box:
//! - **who is in each room**, from presence (this server's, or every server's over
//!   Redis);
//! - **a typing indicator**, throttled sends that reach the rest of the room;
//! - **ask the room**: a question put to everyone else in the room, whose answers come
//!   back as one typed fan-out client result;
//! - **the page is typed by the hub**: a wrong call on it fails `tsc`.
//!
//! A chat name is the bearer token: the page passes it with `accessTokenFactory`, and
//! [`chat_user`] makes it the connection's user. A real application would use a JWT
//! (`hubs::auth::JwtAuthenticator`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use hubs::{
    AuthError, BuildError, ConnectionId, Context, HubError, Request, Server, User, client, hub,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The room, or empty for everyone.
    pub room: String,
    /// Who sent it.
    pub user: String,
    /// What they said.
    pub text: String,
    /// When the server received it.
    pub sent_at: DateTime<Utc>,
}

/// Who is in a room: the names of its members, sorted, each once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RoomMembers {
    /// The room.
    pub room: String,
    /// Its members' names.
    pub members: Vec<String>,
}

/// How a member answers a question put to the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reply {
    /// An answer.
    Answer {
        /// What they answered.
        text: String,
    },
    /// They would rather not say.
    Pass,
}

/// One member's answer to a question put to the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The member.
    pub user: String,
    /// Their reply; `null` when they did not answer in time.
    pub reply: Option<Reply>,
}

/// What the server calls on chat clients.
#[client(typescript)]
pub trait ChatClient {
    /// A message, to everyone (`room` empty) or to a room.
    async fn receive_message(&self, message: Message);
    /// Who is in a room now: after someone joins or leaves it.
    async fn members(&self, members: RoomMembers);
    /// Someone in a room is typing.
    async fn typing(&self, room: String, user: String);
    /// A client result: `from` asks the room `question`; each member replies.
    async fn ask(&self, from: String, question: String) -> Result<Reply, HubError>;
}

/// The chat hub. Rooms are groups; every connection has a chat name (its user).
#[derive(Debug)]
pub struct ChatHub {
    /// How long members have to answer a question put to the room.
    pub answer_within: Duration,
}

impl Default for ChatHub {
    fn default() -> Self {
        Self {
            answer_within: Duration::from_secs(20),
        }
    }
}

/// The rooms a connection is in (its groups are gone by the time `on_disconnected` runs).
#[derive(Debug, Clone, Default)]
struct Rooms(Vec<String>);

/// The group that carries a connection's name, so presence (on one server or over Redis)
/// can tell who a connection is.
fn name_group(name: &str) -> String {
    format!("@{name}")
}

#[hub(client = ChatClient, authorize, typescript)]
impl ChatHub {
    /// Sends `text` to everyone, or to `room` when it is not empty.
    pub async fn send_message(
        &self,
        cx: &Context<Self>,
        room: String,
        text: String,
    ) -> Result<(), HubError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(HubError::new("A message has 1 to 2000 characters."));
        }
        let message = Message {
            room: room.clone(),
            user: name(cx),
            text: text.to_owned(),
            sent_at: Utc::now(),
        };
        let clients = cx.clients();
        let sent = if room.is_empty() {
            clients.all().receive_message(message).await
        } else {
            clients.group(room).receive_message(message).await
        };
        Ok(sent?)
    }

    /// Joins a room: tells its members who is in it now, and returns that.
    pub async fn join_room(
        &self,
        cx: &Context<Self>,
        room: String,
    ) -> Result<RoomMembers, HubError> {
        let room = room.trim().to_owned();
        if room.is_empty() || room.starts_with('@') || room.chars().count() > 64 {
            return Err(HubError::new(
                "A room name has 1 to 64 characters and does not start with '@'.",
            ));
        }
        cx.join(&room).await?;
        cx.items().with(|rooms: &mut Rooms| {
            if !rooms.0.contains(&room) {
                rooms.0.push(room.clone());
            }
        });
        Ok(announce(cx, &room).await)
    }

    /// Leaves a room and tells its members who is left.
    pub async fn leave_room(&self, cx: &Context<Self>, room: String) -> Result<(), HubError> {
        cx.leave(&room).await?;
        cx.items()
            .with(|rooms: &mut Rooms| rooms.0.retain(|r| r != &room));
        announce(cx, &room).await;
        Ok(())
    }

    /// Who is in a room.
    pub async fn members(&self, cx: &Context<Self>, room: String) -> Vec<String> {
        members(cx, &room).await
    }

    /// Tells the rest of the room that the caller is typing. The page sends it at most
    /// every two seconds while its user types.
    pub async fn typing(&self, cx: &Context<Self>, room: String) {
        if !room.is_empty() {
            let user = name(cx);
            // Best effort: the page sends `typing` without waiting for an answer, and a
            // lost "is typing" line is replaced by the next one in two seconds.
            let _ = cx
                .clients()
                .others_in_group(room.clone())
                .typing(room, user)
                .await;
        }
    }

    /// Puts `question` to everyone else in `room` and gathers their replies: a typed
    /// fan-out client result. Members who do not answer in time are listed without one.
    pub async fn ask_room(
        &self,
        cx: &Context<Self>,
        room: String,
        question: String,
    ) -> Result<Vec<Answer>, HubError> {
        let asked = members_but(cx, &room, Some(cx.connection_id())).await;
        let replies = cx
            .clients()
            .others_in_group(room)
            .ask()
            .ask(name(cx), question)?
            .within(self.answer_within)
            .await;
        let mut answers = Vec::with_capacity(asked.len());
        for (connection, user) in asked {
            let reply = replies
                .iter()
                .find(|(id, _)| id == &connection)
                .and_then(|(_, reply)| reply.as_ref().ok().cloned());
            answers.push(Answer { user, reply });
        }
        answers.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(answers)
    }

    /// Gives the connection its name group.
    pub async fn on_connected(&self, cx: &Context<Self>) -> Result<(), HubError> {
        cx.join(&name_group(&name(cx))).await?;
        Ok(())
    }

    /// Tells the rooms the connection was in who is left.
    pub async fn on_disconnected(&self, cx: &Context<Self>) {
        let rooms = cx.items().get::<Rooms>().unwrap_or_default();
        for room in rooms.0 {
            announce(cx, &room).await;
        }
    }
}

/// The caller's chat name.
fn name(cx: &Context<ChatHub>) -> String {
    cx.user()
        .and_then(|user| user.name().or(user.id()))
        .unwrap_or("anonymous")
        .to_owned()
}

/// The members of `room` other than `except`, by connection, with their names.
async fn members_but(
    cx: &Context<ChatHub>,
    room: &str,
    except: Option<&ConnectionId>,
) -> Vec<(ConnectionId, String)> {
    let presence = cx.presence();
    let mut named = Vec::new();
    for connection in presence.group_members(room).await {
        if Some(&connection) == except {
            continue;
        }
        let groups = presence.groups_of(&connection).await;
        if let Some(user) = groups.iter().find_map(|g| g.strip_prefix('@')) {
            named.push((connection, user.to_owned()));
        }
    }
    named
}

/// The names in `room`, sorted, each once (one person may have several tabs open).
async fn members(cx: &Context<ChatHub>, room: &str) -> Vec<String> {
    let mut names: Vec<String> = members_but(cx, room, None)
        .await
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Sends the room's members to the room, and returns them.
async fn announce(cx: &Context<ChatHub>, room: &str) -> RoomMembers {
    let update = RoomMembers {
        room: room.to_owned(),
        members: members(cx, room).await,
    };
    // Best effort: the caller gets the members in its answer either way, and a send the
    // backplane could not route is counted and logged there
    // (`signalr_backplane_publish_failures_total`).
    let _ = cx
        .clients()
        .group(room.to_owned())
        .members(update.clone())
        .await;
    update
}

/// How long the tokens the page gets from `GET /token` live: short, so that the page
/// shows authentication refresh at work (the 11.0 client refreshes at half the lifetime).
pub const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// The chat's JWTs: HS256 with a key made at start-up.
static TOKENS: std::sync::LazyLock<crate::interop::Tokens> =
    std::sync::LazyLock::new(crate::interop::Tokens::default);

/// A token for `name` that lives `lifetime` (the page's: [`TOKEN_LIFETIME`]), or why the
/// name is refused.
///
/// # Errors
///
/// When the name is not acceptable (see [`chat_user`]).
pub fn token_for(name: &str, lifetime: std::time::Duration) -> Result<String, AuthError> {
    let name = acceptable(name)?;
    Ok(TOKENS.issue(name, &[], lifetime))
}

fn acceptable(name: &str) -> Result<&str, AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 32 || name.contains('@') {
        return Err(AuthError(
            "a chat name has 1 to 32 characters and no '@'".into(),
        ));
    }
    Ok(name)
}

/// The chat's authentication: a JWT from `GET /token?name=…` (the page's, which expires
/// and is refreshed), or, for the Rust chat client and scripts, the bare chat name (1 to
/// 32 characters, no `@`), which does not expire. Without one, `#[hub(authorize)]`
/// refuses the connection with 401.
///
/// # Errors
///
/// When the name is not acceptable (401).
pub fn chat_user(request: &Request) -> Result<Option<User>, AuthError> {
    let Some(token) = request.access_token() else {
        return Ok(None);
    };
    let name = acceptable(&token)?;
    Ok(Some(User::new(name).with_name(name)))
}

/// [`chat_user`], JWTs included.
async fn authenticate(request: Request) -> Result<Option<User>, AuthError> {
    let is_jwt = request
        .access_token()
        .is_some_and(|token| token.split('.').count() == 3);
    if is_jwt {
        hubs::Authenticator::authenticate(&TOKENS.authenticator(), &request).await
    } else {
        chat_user(&request)
    }
}

/// The chat server: the hub at `/chat` with `options`, users from [`chat_user`]; a
/// connection closes when its token expires unless it refreshes it (ASP.NET Core 11's
/// authentication refresh, which the page's 11.0 client does by itself).
pub fn server(options: hubs::HubOptions) -> Server {
    let options = options
        .close_on_authentication_expiration(true)
        .authentication_refresh(hubs::auth::AuthenticationRefresh::new());
    Server::new()
        .authenticate(authenticate)
        .hub_with("/chat", ChatHub::default(), options)
}

/// The TypeScript module of the chat hub, as the page imports it.
#[must_use]
pub fn typescript() -> hubs::typescript::Module {
    hubs::typescript::Module::new().hub::<ChatHub>()
}

/// Where the page's sources and build live.
#[must_use]
pub fn page_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("chat")
}

/// The chat page.
pub const PAGE: &str = include_str!("../chat/index.html");

/// Where the official browser client is installed (`npm ci --prefix examples/chat`).
pub fn default_client_script() -> PathBuf {
    page_dir().join("node_modules/@microsoft/signalr/dist/browser/signalr.min.js")
}

/// The chat application: the page at `/`, the browser client at `/signalr.js`, the
/// page's compiled TypeScript under `/app/`, the hub at `/chat`.
///
/// # Errors
///
/// When the hub cannot be built.
pub fn app(client_script: PathBuf) -> Result<axum::Router, BuildError> {
    app_with_token_lifetime(client_script, TOKEN_LIFETIME)
}

/// [`app`] whose page tokens live `lifetime` (tests shorten it to see refreshes).
///
/// # Errors
///
/// When the hub cannot be built.
pub fn app_with_token_lifetime(
    client_script: PathBuf,
    lifetime: std::time::Duration,
) -> Result<axum::Router, BuildError> {
    Ok(router(
        server(hubs::HubOptions::default()).build()?,
        client_script,
        lifetime,
    ))
}

/// The chat application with its hub on a Redis backplane at `url`, so that several chat
/// servers share their rooms (and their presence).
///
/// # Errors
///
/// When Redis cannot be reached or the hub cannot be built.
pub async fn app_with_redis(
    client_script: PathBuf,
    url: &str,
) -> Result<axum::Router, Box<dyn std::error::Error>> {
    let backplane = hubs_redis::RedisLifetimeManager::connect(
        hubs_redis::RedisOptions::new(url).prefix("chat"),
        "chat",
    )
    .await?;
    let options = hubs::HubOptions::default().lifetime_manager(backplane);
    Ok(router(
        server(options).build()?,
        client_script,
        TOKEN_LIFETIME,
    ))
}

/// A file from disk, or a 404 that says how to produce it.
async fn file(
    path: PathBuf,
    content_type: &'static str,
    how: &'static str,
) -> axum::response::Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            axum::http::StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, content_type)],
            bytes,
        )
            .into_response(),
        Err(error) => (
            axum::http::StatusCode::NOT_FOUND,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{} is missing ({error}); {how}", path.display()),
        )
            .into_response(),
    }
}

/// `GET /token?name=…`: a token for the page (text), or 400 with why the name is refused.
async fn token(
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    lifetime: std::time::Duration,
) -> axum::response::Response {
    let name = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, name)| name.into_owned())
        .unwrap_or_default();
    match token_for(&name, lifetime) {
        Ok(token) => token.into_response(),
        Err(refused) => (axum::http::StatusCode::BAD_REQUEST, refused.0).into_response(),
    }
}

fn router(
    hubs: hubs::HubService,
    client_script: PathBuf,
    lifetime: std::time::Duration,
) -> axum::Router {
    const JS: &str = "text/javascript; charset=utf-8";
    const BUILD: &str = "run `bash scripts/chat`, which builds the page (npm ci, tsc)";
    let script = move || file(client_script.clone(), JS, BUILD);
    let app_file = |axum::extract::Path(name): axum::extract::Path<String>| async move {
        // Only the page's own compiled modules: `main.js`, `generated/chat.js`.
        let allowed = ["main.js", "generated/chat.js"];
        if !allowed.contains(&name.as_str()) {
            return axum::http::StatusCode::NOT_FOUND.into_response();
        }
        file(page_dir().join("dist").join(name), JS, BUILD).await
    };
    axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html(PAGE) }),
        )
        .route("/signalr.js", axum::routing::get(script))
        .route(
            "/token",
            axum::routing::get(move |query| token(query, lifetime)),
        )
        .route("/app/{*name}", axum::routing::get(app_file))
        .fallback_service(hubs)
}
