//! The HTTP side of hubs: a hyper server that negotiates connections and carries them
//! over WebSockets, as the official SignalR clients expect. Use it through the `hubs`
//! facade.
//!
//! * [`Server`]: mount hubs on paths, register services, then serve or
//!   [`build`](Server::build) a [`HubService`] to mount inside another hyper or tower
//!   application (axum included).
//! * [`RawConnection`]: raw connection endpoints, the transports without the hub
//!   protocol ([`Server::connection_handler`]).
//! * With the `rest` feature, [`Server::rest_api`]: the Azure SignalR Service data-plane
//!   REST API under `/api`, for code that sends to the hubs without being one.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod body;
mod cors;
mod http_transport;
mod limits;
mod listener;
mod negotiate;
mod options;
mod raw;
mod registry;
#[cfg(feature = "rest")]
mod rest;
mod router;
mod server;
mod service;
mod stateful;
mod websocket;

pub use body::Body;
pub use cors::Cors;
#[cfg(feature = "tls")]
pub use listener::TlsError;
pub use listener::{ServeOptions, serve};
pub use options::EndpointOptions;
pub use raw::{RawConnection, RawSender};
pub use server::{Bound, BuildError, Server};
pub use service::HubService;
