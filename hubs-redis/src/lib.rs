//! A Redis backplane for [hubs](https://docs.rs/hubs): run a hub on several servers and
//! reach every client wherever it is connected.
//!
//! [`RedisLifetimeManager`] implements the hubs `LifetimeManager` over Redis pub/sub;
//! mount a hub with it on each server:
//!
//! ```no_run
//! # async fn f<H: hubs_core::Hub>(hub: H) -> Result<(), Box<dyn std::error::Error>> {
//! use hubs_core::HubOptions;
//! use hubs_redis::{RedisLifetimeManager, RedisOptions};
//!
//! let backplane = RedisLifetimeManager::connect(RedisOptions::new("redis://127.0.0.1:6379/").prefix("myapp"), "chat").await?;
//! let options = HubOptions::default().lifetime_manager(backplane);
//! # let _ = (options, hub);
//! # Ok(()) }
//! ```
//!
//! # How messages travel
//!
//! Each broadcast is encoded once per protocol and published once. Every server
//! subscribes only to what concerns its own connections: a channel for all, one per group
//! with a local member, one per user with a local connection, one per local connection,
//! and one for replies to itself (`{prefix}:{hub}:…`). The sending server delivers to its
//! own connections directly, so local delivery does not depend on Redis.
//!
//! Group changes for a connection on another server, and client results from a
//! connection on another server, go to that connection's channel; the reply comes back
//! on the asking server's channel.
//!
//! # When Redis fails
//!
//! * At start-up: [`RedisLifetimeManager::connect`] fails with [`ConnectError`].
//! * While running: local delivery keeps working. A send that must reach other servers
//!   is delivered locally and then fails with `SendError::Routing` (the caller learns
//!   that remote clients may have missed it); remote group changes and client results
//!   fail likewise. The publisher reconnects by itself; the subscriber reconnects with
//!   backoff and restores every subscription, so group membership survives.
//!
//! # Metrics
//!
//! Through the `metrics` facade, beside the hub's own (`hubs::meters`), labelled `hub`:
//! `signalr_backplane_publish_failures_total` (publishes that failed after their retries)
//! and `signalr_backplane_lag_seconds` (from a server's publish of a broadcast to another
//! server's receipt, by the two servers' clocks).

mod backplane;
mod envelope;

pub use backplane::{ConnectError, RedisLifetimeManager, RedisOptions};
