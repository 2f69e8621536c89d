//! Real-time hubs for Rust, wire-compatible with ASP.NET Core SignalR.
//!
//! A hub is a type whose methods clients call by name. Put `#[hub]` on an `impl` block,
//! mount the hub on a [`Server`], and SignalR clients call it over WebSockets, Server-Sent
//! Events or long polling with the JSON or MessagePack hub protocol: the official
//! JavaScript client (tested with 9.0.19, 10.0.11 and 11.0.0), and any client of the same
//! documented protocol.
//!
//! ```no_run
//! use hubs::{Context, HubError, hub};
//!
//! pub struct Chat;
//!
//! #[hub]
//! impl Chat {
//!     /// Wire name `SendMessage`.
//!     pub async fn send_message(&self, cx: &Context<Self>, user: String, text: String) -> Result<(), HubError> {
//!         cx.clients().all().send("ReceiveMessage", (user, text)).await?;
//!         Ok(())
//!     }
//!
//!     pub async fn join(&self, cx: &Context<Self>, room: String) -> Result<(), HubError> {
//!         cx.join(&room).await?; // the caller; `cx.groups().add(id, &room)` for any connection
//!         Ok(())
//!     }
//!
//!     pub fn add(&self, a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     hubs::Server::new().hub("/chat", Chat).serve("127.0.0.1:5000").await
//! }
//! ```
//!
//! # `#[hub]`
//!
//! Every visible (`pub`, `pub(crate)`, …) method of the block becomes a hub method; private
//! methods and those marked
//! `#[hub(skip)]` stay ordinary methods. **A method without `pub` is not a hub method**:
//! rustc warns that it `is never used`, a client that calls it gets `Method does not
//! exist.`, and the server logs a warning naming the private function it matched. A hub
//! method:
//!
//! * takes `&self` (the hub value is shared by every connection and call: put pools,
//!   caches and configuration in it; per-connection state belongs in
//!   [`Context::items`]);
//! * may be `async` or not;
//! * takes, in any order: the context (`&Context<Self>`), injected services
//!   (`#[hub(service)] db: &Db`, or `Arc<Db>`; `#[hub(service = "key")]` for keyed ones,
//!   registered with [`Server::service`] and [`Server::keyed_service`]; a missing one
//!   fails [`Server::build`]), and payload parameters of any `DeserializeOwned` type,
//!   which are the call's arguments in order;
//! * returns `()`, a `Serialize` value, or `Result<T, E>` with `E: Display`. An `Err`
//!   that is a [`HubError`] reaches the caller with its message; any other error is
//!   reported as `An unexpected error occurred invoking '…' on the server.`, with the
//!   error's type and message appended only when the hub enables detailed errors
//!   ([`HubOptions::enable_detailed_errors`]).
//!
//! **Sends fail, and `?` says so.** Every send (`cx.clients().all().send(..)`, a typed
//! call, `cx.join(..)`) returns `Result<_, SendError>`, and [`SendError`] converts into
//! [`HubError`]: in a method returning `Result<_, HubError>`, `?` ends the call and its
//! caller's `invoke` fails with `The message could not be encoded.` (an argument serde
//! refused), `The message was dropped: …` (an outgoing filter dropped it) or `The message
//! could not be routed.` (with Redis: a full outbox, a confirmed send Redis did not accept,
//! a group change for a connection on a server that cannot be reached). A send to clients
//! that are gone is not an error: there was no one to reach. Write `let _ = …` only where
//! a failed send truly does not matter to the caller, and say why.
//!
//! The wire name is the PascalCase of the Rust name (`send_message` → `SendMessage`);
//! `#[hub(rename = "Name")]` overrides it. Incoming names are matched without regard to
//! case, as the official server does; two methods whose wire names differ only in case do
//! not compile.
//!
//! **Streams.** A method returning `impl Stream<Item = T>` (or a
//! `tokio::sync::mpsc::Receiver<T>`, or either inside a `Result`, which fails before any
//! item) is a streaming method: clients call it with `stream(...)` and get each item as it
//! comes. Items of type `Result<T, E>` end the stream with
//! `An error occurred on the server while streaming results.` on the first `Err`. The
//! stream is dropped when the client cancels it, the connection ends, or the server shuts
//! down; a `CancellationToken` parameter lets the method see that. Each item waits for
//! room in the caller's queue, so a slow client slows only its own streams. Return
//! `impl Stream<Item = T> + use<>` (capturing nothing): the stream outlives the call.
//!
//! A parameter of type [`UploadStream<T>`] receives a stream the client sends (it stands
//! for one entry of the call's `streamIds`, in order); it yields `Result<T, HubError>`,
//! the error being the client's when it ends the upload with one. At most 10 items wait
//! for the method (`StreamBufferCapacity`); past that the connection stops reading until
//! the method catches up.
//!
//! ```no_run
//! use hubs::{CancellationToken, HubError, Stream, UploadStream, hub};
//! use futures_util::StreamExt;
//!
//! pub struct Numbers;
//!
//! #[hub]
//! impl Numbers {
//!     pub fn counter(&self, to: u32) -> impl Stream<Item = u32> + use<> {
//!         futures_util::stream::iter(0..to)
//!     }
//!
//!     pub async fn sum(&self, mut numbers: UploadStream<u64>, cancel: CancellationToken) -> Result<u64, HubError> {
//!         let mut total = 0;
//!         while let Some(n) = numbers.next().await {
//!             if cancel.is_cancelled() {
//!                 break;
//!             }
//!             total += n?;
//!         }
//!         Ok(total)
//!     }
//! }
//! ```
//!
//! Three methods are hooks rather than hub methods: `on_connected(&self, cx: &Context<Self>)`
//! (returning `()` or `Result<(), HubError>`; an error closes the connection),
//! `on_disconnected(&self, cx: &Context<Self>, error: Option<HubError>)`, and
//! `on_authentication_refreshed(&self, cx: &Context<Self>)` (a connection took a refreshed
//! credential; `cx.user()` is the new user).
//!
//! Options on the block: `#[hub(crate = "path")]` names the `hubs` crate when it is
//! re-exported under another path.
//!
//! The macro generates an implementation of [`Hub`] in a `const _: () = { … }` scope:
//! the method table, the argument binding per protocol and the dispatch.
//!
//! Options on the block: `#[hub(client = ChatClient)]` ties the hub to a `#[client]`
//! trait, so its Clients targets are typed proxies (see below); without it they are
//! untyped [`Recipients`](routing::Recipients) with `send(target, args)`.
//!
//! # Authorization and limits
//!
//! `authorize` on the block requires it of every connection (`401` without a user, `403`
//! for one who does not qualify); on a method, of every call (the caller gets
//! `Failed to invoke 'X' because user is unauthorized` and stays connected). Roles are any
//! of; policies, registered with `Server::policy`, all of. `limit` declares a rate (a
//! token bucket, per connection or per user) or a number of calls at once:
//!
//! ```
//! use hubs::{Context, hub};
//!
//! pub struct Shop;
//!
//! #[hub(authorize)]
//! impl Shop {
//!     pub fn browse(&self) -> Vec<String> {
//!         Vec::new()
//!     }
//!
//!     #[hub(authorize(roles = "buyer, admin", policy = "verified"))]
//!     #[hub(limit(rate = "10/min", burst = 3, per = "user"), limit(concurrency = 1))]
//!     pub async fn order(&self, cx: &Context<Self>, item: String) -> String {
//!         format!("{item} for {}", cx.user_identifier().unwrap_or("?"))
//!     }
//! }
//! ```
//!
//! Identity comes from an [`Authenticator`] (`Server::authenticate`, or
//! `EndpointOptions::authenticate`; `hubs::auth::JwtAuthenticator` with the `jwt`
//! feature), and [`Context::user`] reads it. [`HubFilter`](filter::HubFilter)s run around every call and hook
//! (`Server::filter`, `HubOptions::filter`); [`OutgoingFilter`](filter::OutgoingFilter)s around every message the
//! hub sends (`HubOptions::outgoing_filter`).
//!
//! A hub with [`HubOptions::authentication_refresh`] lets live connections take a fresh
//! token without reconnecting (ASP.NET Core 11, `@microsoft/signalr` 11's
//! `withAuthenticationRefresh()`): see [`auth::AuthenticationRefresh`] for what is accepted,
//! what changes ([`Context::user`], per-method authorization, the close-on-expiry timer),
//! and the hook `on_authentication_refreshed(&self, cx: &Context<Self>)`.
//!
//! # `#[client]`
//!
//! On a trait, `#[client]` describes the methods the server calls on connected clients,
//! and generates typed proxies for them, so calls are checked by the compiler (ASP.NET
//! Core's `Hub<T>`, with client results checked too):
//!
//! ```no_run
//! use hubs::{Context, HubError, client, hub};
//!
//! #[client]
//! pub trait ChatClient {
//!     /// A call (target `ReceiveMessage`): any target may be called.
//!     async fn receive_message(&self, user: String, text: String);
//!     /// A client result (target `GetMessage`): only single-client targets offer it.
//!     async fn get_message(&self) -> Result<String, HubError>;
//! }
//!
//! pub struct Chat;
//!
//! #[hub(client = ChatClient)]
//! impl Chat {
//!     pub async fn send_message(&self, cx: &Context<Self>, user: String, text: String) -> Result<(), HubError> {
//!         cx.clients().all().receive_message(user, text).await?;
//!         Ok(())
//!     }
//!
//!     pub async fn ask_caller(&self, cx: &Context<Self>) -> Result<String, HubError> {
//!         cx.clients().caller().get_message().await
//!     }
//!
//!     pub async fn poll_room(&self, cx: &Context<Self>, room: String) -> Vec<String> {
//!         // Several clients at once: answers stream in as (connection id, result).
//!         match cx.clients().group(room).ask().get_message() {
//!             Ok(answers) => answers.all().await.into_iter().filter_map(|(_, r)| r.ok()).collect(),
//!             Err(_) => Vec::new(),
//!         }
//!     }
//! }
//! ```
//!
//! For a trait `ChatClient` it generates:
//!
//! * the trait itself, with `where Self: Sized` added to each method (a Rust client
//!   implements it to receive calls; `Self: Sized` is what lets `#[hub(client = Trait)]`
//!   find the proxy through `dyn Trait`, so importing the trait is all a hub needs);
//! * `ChatClientProxy<K = Many>`, what the Clients targets return. Each method without a
//!   return value becomes `async fn name(&self, args…) -> Result<(), SendError>` on every
//!   target: it sends an Invocation with target `Name` (PascalCase of the Rust name;
//!   `#[client(rename = "...")]` overrides, and the target is sent exactly so spelled).
//!   Each method returning `Result<T, HubError>` is a client result:
//!   `async fn name(&self, args…) -> Result<T, HubError>`, offered only on
//!   `ChatClientProxy<One>` (`caller()`, `client(id)`), so calling it on `all()` does not
//!   compile (the error says to use `caller()`, `client(id)` or `.ask()`). It sends an Invocation with an id and waits for the client's Completion,
//!   failing with the client's error text, `Client didn't provide a result.`, a
//!   deserialization error, a timeout ([`HubOptions::client_result_timeout`], 30 s by
//!   default) or `Connection '…' disconnected.`;
//! * `ChatClientProxy<Many>::ask()`, returning `ChatClientAsk`, whose result methods return
//!   [`Responses`](routing::Responses): the answers of every selected client as they come, with
//!   `first()`, `all()` and `within(deadline)`, each client bounded by its own timeout
//!   (`ChatClientAsk::timeout`).
//!
//! Methods must be `async fn` taking `&self`; they cannot be generic; arguments must be
//! `Serialize` and results `DeserializeOwned`. Two targets that differ only in case do
//! not compile (the JavaScript client matches targets without regard to case).
//! `#[client(crate = "path")]` names the `hubs` crate.
//!
//! **What the attributes generate**, by direction:
//!
//! | name | from | used by | for |
//! |---|---|---|---|
//! | `ChatClientProxy` | `#[client] trait ChatClient` | the server | calling clients: what `cx.clients().all()` returns; never named in hub code |
//! | `ChatClientReceiver` | `#[client] trait ChatClient` | a Rust client | receiving the server's calls: `ChatClientReceiver::register(&connection, Arc::new(my_impl))` |
//! | `ChatHubConnection` | `#[hub] impl ChatHub` | a Rust client | calling the hub: `ChatHubConnection::new(&connection).send_message(..)` |
//!
//! The last two exist only with the `client` feature.
//!
#![cfg_attr(feature = "client", doc = include_str!("../docs/client.md"))]
//!
//! # Guide
//!
//! [`guide`]: chapters from a first hub to production, each with code that runs as a
//! doctest (build the docs with `--all-features` to see them all).
//!
//! # Features
//!
//! * `macros` (default): the `#[hub]` and `#[client]` attributes.
//! * `client`: the Rust client, `hubs-client` as `hubs::connection`, and the typed
//!   `{Hub}Connection` and `{Trait}Receiver` the attributes generate for it (without the
//!   feature they generate none, so a server-only build has no client in it).
//! * `tls`: `ServeOptions::tls` and `tls_pem` (the server terminates TLS itself, with
//!   rustls), and `https://`/`wss://` in the client.
//! * `redis`: `hubs-redis` as `hubs::redis`, scale-out over Redis (a backplane and
//!   cluster-wide presence).
//! * `opentelemetry`: W3C trace context in hub message headers, both ways.
//! * `rest`: `Server::rest_api`, the Azure SignalR Service data-plane REST API (versions
//!   2022-06-01 and v1) under `/api`, so code that is not a hub (a worker, a cron job, an
//!   app written for the Azure service) sends to clients, manages groups and closes
//!   connections with plain HTTP.
//! * `testing`: `hubs::testing::TestServer`, Rust clients connected to a server's hubs in
//!   the same process (no TCP, tokio's paused clock works).
//! * `typescript`: `hubs::typescript`, TypeScript for JavaScript clients from
//!   `#[hub(typescript)]` and `#[client(typescript)]` (payload types derive ts-rs's `TS`).

// The root: what a hub author names every day. Everything else lives in a module named
// for its concern.
/// # Typed
///
/// A hub declared with `#[hub(client = Trait)]` has typed targets here too. Take the
/// context from the server ([`Bound::service`], [`HubService::hub_context`]) and move it
/// into the task:
///
/// ```no_run
/// use std::time::Duration;
/// use hubs::{HubContext, HubError, client, hub};
///
/// #[client]
/// pub trait Ticker {
///     async fn tick(&self, n: u64);
/// }
///
/// pub struct Clock;
///
/// #[hub(client = Ticker)]
/// impl Clock {}
///
/// async fn heartbeat(clock: HubContext<Clock>) -> Result<(), HubError> {
///     for n in 0.. {
///         clock.clients().all().tick(n).await?;
///         tokio::time::sleep(Duration::from_secs(1)).await;
///     }
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let server = hubs::Server::new().hub("/clock", Clock).bind("127.0.0.1:5000").await?;
///     let clock = server.service().hub_context::<Clock>().expect("mounted above");
///     tokio::spawn(heartbeat(clock));
///     server.serve().await
/// }
/// ```
pub use hubs_core::HubContext;
pub use hubs_core::{
    Arguments, AuthError, Authenticator, Binary, CancellationToken, ConnectionId, Context, Hub,
    HubError, HubOptions, Items, Request, SendError, Stream, TransportKind, UploadStream, User,
};
#[cfg(feature = "macros")]
pub use hubs_macros::{client, hub};
/// Why `ServeOptions::tls_pem` could not load a certificate. With the `tls` feature.
#[cfg(feature = "tls")]
pub use hubs_transport::TlsError;
pub use hubs_transport::{
    Bound, BuildError, Cors, EndpointOptions, HubService, ServeOptions, Server, serve,
};

/// The hub protocol (the `hubs-protocol` crate): messages, the JSON and MessagePack codecs, the
/// handshake, [`Arguments`], the wire texts and trace context.
pub use hubs_core::protocol;

/// Meters (the `metrics` facade): what the server counts and times, and their names.
pub use hubs_core::meters;

/// The Rust client ([`hubs_client`]): calls any SignalR hub, hubs' or ASP.NET Core's, over
/// every transport and protocol, with TLS and stateful reconnect; its main type is
/// [`HubConnection`](connection::HubConnection). With the `client` feature.
#[cfg(feature = "client")]
pub use hubs_client as connection;

/// Scale-out over Redis ([`hubs_redis`]): the backplane and cluster-wide presence. With
/// the `redis` feature.
#[cfg(feature = "redis")]
pub use hubs_redis as redis;

/// TypeScript for JavaScript clients ([`hubs_typescript`]), from `#[hub(typescript)]` and
/// `#[client(typescript)]`. With the `typescript` feature.
#[cfg(feature = "typescript")]
pub use hubs_typescript as typescript;

#[cfg(feature = "testing")]
pub mod testing;

pub mod guide;

/// Code around every call, hook and outgoing message: [`HubFilter`](filter::HubFilter)s,
/// [`OutgoingFilter`](filter::OutgoingFilter)s, and the declared limits.
pub mod filter {
    pub use hubs_core::{
        BoxFuture, ConnectionInfo, DispatchError, Dropped, HubFilter, HubInvocation, Limit,
        LimitFilter, Next, NextHook, OutgoingFilter, OutgoingKind, OutgoingMessage, Reply, Scope,
        TraceContext,
    };
}

/// Who may connect and call: policies and requirements, and (with the `jwt` feature) JWT
/// authentication (the `hubs-auth` crate: `JwtAuthenticator`, `JwtIssuer`).
pub mod auth {
    #[cfg(feature = "jwt")]
    pub use hubs_auth::*;
    pub use hubs_core::{
        AuthenticationRefresh, Policies, Policy, PolicyCheck, RefreshRefused, Refreshed,
        Requirement, Verdict, token_lifetime_seconds,
    };
}

/// Where messages go: the Clients targets, client results, groups, presence, the lifetime
/// managers that route (in memory, or a backplane's) and the slow-consumer rules.
pub mod routing {
    pub use hubs_core::{
        Cardinality, ClientFamily, ClientResultError, Clients, Delivery, Groups, HubClients,
        InMemoryLifetimeManager, LifetimeManager, Many, One, OutboundBudget, PerProtocol, Presence,
        Recipients, Responses, Selection, SerializedMessage, SingleClient, SlowConsumer,
        SlowConsumerPolicy, SlowConsumerStats, Untyped, deliver,
    };
}

/// Advanced: the runtime pieces a transport or a backplane builds on, and raw (non-hub)
/// connection endpoints.
pub mod runtime {
    pub use hubs_core::{
        Call, Capabilities, CloseHandle, Connected, ConnectionClosed, ConnectionHandle, Frame,
        HubEndpoint, HubMethod, HubRuntime, Incoming, MissingServiceError, MountError,
        OutboundQueue, Outgoing, ReplyStream, ServiceKey, Services, Throttle, TransportConnection,
        TryRecvError, TrySendError, UnknownPolicyError, receiver_stream, reply_fallible_stream,
        reply_stream,
    };
    pub use hubs_transport::{Body, RawConnection, RawSender};
}

/// What generated code names. Not a public API: no semver promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::__client_items as client_items;
    pub use crate::__typescript_items as typescript_items;
    #[cfg(feature = "client")]
    pub use hubs_client::{
        ClientStream, HubConnection, InvokeError as ClientInvokeError, ProxyInvoke, ProxyStream,
        ReceiverHost, Upload,
    };
    pub use hubs_core::__private::*;
    #[cfg(feature = "typescript")]
    pub use hubs_typescript as typescript;
}

/// What `#[hub]` and `#[client]` generate for clients (typed proxies and receivers): kept
/// with the `client` feature, dropped without it.
#[cfg(feature = "client")]
#[doc(hidden)]
#[macro_export]
macro_rules! __client_items {
    ($($item:tt)*) => { $($item)* };
}

/// What `#[hub]` and `#[client]` generate for clients: dropped without the `client` feature.
#[cfg(not(feature = "client"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __client_items {
    ($($item:tt)*) => {};
}

/// What `#[hub(typescript)]` and `#[client(typescript)]` generate: kept with the
/// `typescript` feature.
#[cfg(feature = "typescript")]
#[doc(hidden)]
#[macro_export]
macro_rules! __typescript_items {
    ($($item:tt)*) => { $($item)* };
}

/// Without the `typescript` feature, asking for TypeScript is a mistake to report.
#[cfg(not(feature = "typescript"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __typescript_items {
    ($($item:tt)*) => {
        ::core::compile_error!("`typescript` in `#[hub(...)]` or `#[client(...)]` needs the `typescript` feature of hubs");
    };
}
