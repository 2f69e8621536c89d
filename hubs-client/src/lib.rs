//! The Rust client of hubs: [`HubConnection`] calls hubs on a SignalR server (written to
//! ASP.NET Core's protocol; tested against hubs and against `aiosignalr`, a Python
//! server) over WebSockets, Server-Sent Events or long polling, with the JSON or
//! MessagePack protocol, over plain HTTP or TLS (`https://`, `wss://`), reconnects
//! automatically, and resumes a dropped WebSocket without losing a message (stateful
//! reconnect).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use hubs_client::HubConnection;
//!
//! let connection = HubConnection::builder("https://chat.example.com/chat")
//!     .with_automatic_reconnect()
//!     .with_stateful_reconnect()
//!     .build();
//! connection.on("ReceiveMessage", |(user, text): (String, String)| async move {
//!     println!("{user}: {text}");
//! });
//! connection.start().await?;
//! connection.send("SendMessage", ("ann", "hello")).await?;
//! let sum: i64 = connection.invoke("Add", (1, 2)).await?;
//! # let _ = sum;
//! # Ok(()) }
//! ```
//!
//! # Authentication refresh
//!
//! As `@microsoft/signalr` 11, the client keeps a long-lived connection authenticated
//! when the server supports it (hubs with refresh enabled, ASP.NET Core 11, Azure
//! SignalR): [`HubConnection::refresh_authentication`] sends a new token from the
//! [`access_token`](HubConnectionBuilder::access_token) provider to `POST {hub}/refresh`,
//! and [`HubConnectionBuilder::with_authentication_refresh`] does so on a timer, before the
//! token's lifetime (which negotiate reports) runs out
//! ([`ConnectionEvent::AuthenticationRefreshed`],
//! [`ConnectionEvent::AuthenticationRefreshFailed`]). Over long polling, a poll the
//! server answers 409 `authentication_refresh_required` refreshes the token and polls
//! again, and a 401 on a poll, a send or the DELETE is sent once more with a new token.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! # async fn sign_in() -> String { String::new() }
//! use hubs_client::HubConnection;
//!
//! let connection = HubConnection::builder("https://chat.example.com/chat")
//!     .access_token(|| async { Some(sign_in().await) })
//!     .with_authentication_refresh()
//!     .build();
//! connection.start().await?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! One supervisor task owns the connection: its state ([`ConnectionState`]), the transport,
//! the calls waiting for their results and the streams being received. Every
//! [`HubConnection`] method is a command to it, so `start`, `stop`, a reconnect and a call
//! never race on shared state: a `stop` during a reconnect stops it, and nothing follows
//! [`ConnectionEvent::Closed`]. The supervisor never waits on user code: calls from the
//! server run one after another, in arrival order, on a task of their own (as the official
//! .NET client does), and stream items are buffered for their reader, so an unread stream or
//! a slow handler holds up neither results nor keep-alive.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod __fuzz;
mod arguments;
mod builder;
mod command;
mod config;
mod connection;
mod credentials;
mod dispatch;
mod error;
mod events;
mod handshake;
mod negotiate;
mod proxy;
mod retry;
mod session;
mod stream;
mod supervisor;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use arguments::FromArguments;
pub use builder::HubConnectionBuilder;
pub use connection::HubConnection;
pub use dispatch::HandlerReply;
pub use error::{HandshakeError, InvokeError, RefreshError, StartError};
pub use events::{ConnectionEvent, ConnectionState};
pub use proxy::{ProxyInvoke, ProxyStream, ReceiverHost};
pub use retry::{DefaultRetryPolicy, RetryPolicy};
pub use stream::{ClientStream, Upload};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsConfigError};
pub use transport::in_memory::{Connector, Duplex};
