//! The chat example: a typed hub (`ChatHub`, calling `ChatClient`), and a page that uses
//! the official SignalR browser client.

use std::path::{Path, PathBuf};

use hubs::{BuildError, Context, HubError, Server, client, hub};

/// What the server calls on chat clients.
#[client]
pub trait ChatClient {
    /// A message, to everyone (`room` empty) or to a room.
    async fn receive_message(&self, room: String, user: String, text: String);
    /// Someone joined a room.
    async fn joined(&self, room: String, user: String);
    /// Someone left a room.
    async fn left(&self, room: String, user: String);
}

/// The chat hub. Rooms are groups.
#[derive(Debug, Default)]
pub struct ChatHub;

#[hub(client = ChatClient)]
impl ChatHub {
    /// Sends `text` to everyone, or to `room` when it is not empty.
    pub async fn send_message(
        &self,
        cx: &Context<Self>,
        room: String,
        user: String,
        text: String,
    ) -> Result<(), HubError> {
        let clients = cx.clients();
        let sent = if room.is_empty() {
            clients.all().receive_message(room, user, text).await
        } else {
            clients
                .group(room.clone())
                .receive_message(room, user, text)
                .await
        };
        sent.map_err(|e| HubError::new(e.to_string()))
    }

    /// Joins a room and tells its members.
    pub async fn join_room(
        &self,
        cx: &Context<Self>,
        room: String,
        user: String,
    ) -> Result<(), HubError> {
        cx.groups()
            .add(cx.connection_id(), &room)
            .await
            .map_err(|e| HubError::new(e.to_string()))?;
        let _ = cx.clients().group(room.clone()).joined(room, user).await;
        Ok(())
    }

    /// Leaves a room and tells its members.
    pub async fn leave_room(
        &self,
        cx: &Context<Self>,
        room: String,
        user: String,
    ) -> Result<(), HubError> {
        cx.groups()
            .remove(cx.connection_id(), &room)
            .await
            .map_err(|e| HubError::new(e.to_string()))?;
        let _ = cx.clients().group(room.clone()).left(room, user).await;
        Ok(())
    }
}

/// The chat page.
pub const PAGE: &str = include_str!("../chat/index.html");

/// Where the official browser client is installed (`npm ci --prefix examples/chat`).
pub fn default_client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("chat/node_modules/@microsoft/signalr/dist/browser/signalr.min.js")
}

/// The chat application: the page at `/`, the browser client at `/signalr.js`, the hub
/// at `/chat`.
///
/// # Errors
///
/// When the hub cannot be built.
pub fn app(client_script: PathBuf) -> Result<axum::Router, BuildError> {
    Ok(router(
        Server::new().hub("/chat", ChatHub).build()?,
        client_script,
    ))
}

/// The chat application with its hub on a Redis backplane at `url`, so that several chat
/// servers share their rooms.
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
        Server::new().hub_with("/chat", ChatHub, options).build()?,
        client_script,
    ))
}

fn router(hubs: hubs::HubService, client_script: PathBuf) -> axum::Router {
    let script = move || {
        let path = client_script.clone();
        async move {
            match tokio::fs::read(&path).await {
                Ok(bytes) => (
                    axum::http::StatusCode::OK,
                    [(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    bytes,
                ),
                Err(error) => (
                    axum::http::StatusCode::NOT_FOUND,
                    [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    format!(
                        "the SignalR browser client is not installed at {} ({error}); run `npm ci --prefix examples/chat`",
                        path.display()
                    )
                    .into_bytes(),
                ),
            }
        }
    };
    axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html(PAGE) }),
        )
        .route("/signalr.js", axum::routing::get(script))
        .fallback_service(hubs)
}
