//! A Redis backplane for [hubs](https://docs.rs/hubs-signalr): run a hub on several servers and
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
//! and one for replies to itself (`{prefix}:{hub}:…`). A send to several groups, users or
//! connections is one envelope on the channel every server hears; each server picks its
//! own connections, so a connection in two of the groups gets the message once.
//!
//! The sending server delivers to its own connections directly, then hands the envelope
//! to its **outbox**: one bounded queue and one task that publishes in order, in batches,
//! so a send never waits on Redis (a hung Redis does not slow local delivery). Every
//! envelope is numbered by its server; a receiver drops a number it has already seen, so
//! a publish retried after Redis had in fact accepted it is delivered once. The listener
//! delivers without ever waiting on one connection (a full queue is handled by the
//! connection's slow-consumer policy, `Wait` taken as `Disconnect`).
//!
//! Group changes for a connection on another server, and client results from a
//! connection on another server, go to that connection's channel; the reply comes back
//! on the asking server's channel.
//!
//! # Redis Cluster
//!
//! [`RedisOptions::cluster`] reaches a Redis Cluster (Redis 7+) with sharded pub/sub:
//! channels are published with `SPUBLISH` and heard with `SSUBSCRIBE` on the shard that
//! owns their slot, so pub/sub traffic spreads over the cluster instead of being copied to
//! every node. Presence keys share one hash tag (`{prefix:hub}`), so they live on one
//! shard. The cluster client follows resharding and failovers and resubscribes by itself.
//!
//! # Presence
//!
//! Who is connected is kept in Redis sets (`{prefix}:{hub}:presence:…`): the members of
//! each group and user, the groups of each connection, the server owning each connection.
//! Each server renews a heartbeat key every 3 s (it expires after 10 s); members of a
//! server whose heartbeat is gone, one that crashed without cleaning up, are left out of
//! every answer and removed when read. So `Presence` (group members, a user's
//! connections, a connection's groups, counts), kicks (`Presence::kick` closes a
//! connection on whichever server has it) and fan-out client results
//! (`clients.group(g).invoke_each(..)`) see every server.
//!
//! # When Redis fails
//!
//! * At start-up: [`RedisLifetimeManager::connect`] fails with [`ConnectError`].
//! * While running: local delivery keeps working. The outbox retries a publish for
//!   [`RedisOptions::publish_patience`] (10 s); what is still unpublished then is lost for
//!   the other servers, counted ([`RedisLifetimeManager::stats`], the
//!   `signalr_backplane_publish_failures_total` metric) and logged. A hub method that
//!   must know sends with `clients().confirmed()`: its send returns once Redis accepted
//!   the message, or fails with `SendError::Routing`. A full outbox
//!   ([`RedisOptions::outbox_capacity`]) fails the send at once. Remote group changes and
//!   client results fail likewise. The publisher reconnects by itself; the subscriber
//!   reconnects with backoff and restores every subscription, so group membership
//!   survives.
//!
//! # Metrics
//!
//! Through the `metrics` facade, beside the hub's own (`hubs::meters`), labelled `hub`:
//! `signalr_backplane_publish_failures_total` (envelopes lost: given up on after their
//! retries, or refused by a full outbox) and `signalr_backplane_lag_seconds` (from a server's publish of a broadcast to another
//! server's receipt, by the two servers' clocks).

mod backplane;
mod connection;
mod envelope;
mod options;
mod outbox;
mod presence;

pub use backplane::RedisLifetimeManager;
pub use options::{ConnectError, RedisOptions};
pub use outbox::BackplaneStats;
