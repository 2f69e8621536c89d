//! Routing: which connections a message goes to. One trait, [`LifetimeManager`], with the
//! in-memory default ([`InMemoryLifetimeManager`]); a backplane (Redis) implements the
//! same trait. Messages for many recipients are [`SerializedMessage`]s, encoded once per
//! protocol ([`PerProtocol`]).

mod memory;
mod message;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::connection::{ClientResultError, ConnectionHandle, TrySendError};
use crate::connection_id::ConnectionId;
use crate::error::SendError;
use crate::slow_consumer::Delivery;
use hubs_protocol::Arguments;
use hubs_protocol::Outcome;

pub use memory::InMemoryLifetimeManager;
pub use message::{PerProtocol, SerializedMessage};

/// Which connections a message is for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Every connection of the hub.
    All,
    /// Every connection but these.
    AllExcept(Vec<ConnectionId>),
    /// One connection.
    Connection(ConnectionId),
    /// These connections.
    Connections(Vec<ConnectionId>),
    /// The members of a group.
    Group(String),
    /// The members of any of these groups (each connection once).
    Groups(Vec<String>),
    /// The members of a group but these connections.
    GroupExcept(String, Vec<ConnectionId>),
    /// The connections of a user.
    User(String),
    /// The connections of any of these users.
    Users(Vec<String>),
}

impl Selection {
    /// Whether the selection is one connection ([`Delivery::Direct`]) or may be several
    /// ([`Delivery::FanOut`]), for the slow-consumer policy.
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Connection(_) => Delivery::Direct,
            _ => Delivery::FanOut,
        }
    }
}

/// Routes messages to connections and keeps groups; one per hub.
///
/// The in-memory [`InMemoryLifetimeManager`] is the default. A backplane implements the
/// same trait to reach connections on other servers.
#[async_trait]
pub trait LifetimeManager: Send + Sync + 'static {
    /// A connection completed its handshake.
    async fn on_connected(&self, connection: Arc<ConnectionHandle>);

    /// A connection ended; forget it and its group memberships.
    async fn on_disconnected(&self, connection: &ConnectionHandle);

    /// Sends `message` to the selected connections. A backplane delivers to its own
    /// connections and hands the rest to its transport without waiting for it.
    async fn send(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError>;

    /// [`send`](Self::send), returning only once the message has been handed over to
    /// every server's share (for a backplane: the broker accepted it), so a failure is
    /// the caller's to see. The in-memory manager has nothing more to wait for.
    async fn send_confirmed(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        self.send(selection, message).await
    }

    /// Adds a connection to a group.
    async fn add_to_group(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError>;

    /// Removes a connection from a group.
    async fn remove_from_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), SendError>;

    /// The local connection with this id, if it is connected to this server.
    fn connection(&self, id: &ConnectionId) -> Option<Arc<ConnectionHandle>>;

    /// The ids of the selected connections (on every server, for a backplane).
    async fn connection_ids(&self, selection: &Selection) -> Vec<ConnectionId>;

    /// The groups a connection is in (wherever it is, for a backplane).
    async fn groups_of(&self, connection: &ConnectionId) -> Vec<String>;

    /// Ends a connection wherever it is (it gets a Close without an error, and is told
    /// not to reconnect, as with `abort`). `true` if it existed.
    async fn abort(&self, connection: &ConnectionId) -> bool {
        match self.connection(connection) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// Invokes `target` on one connection and waits for its result (a client result).
    async fn invoke(
        &self,
        connection: &ConnectionId,
        target: &str,
        arguments: &(dyn Arguments + Send),
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError>;
}

/// Queues `message` on every connection in `targets`, then waits for those that hold
/// more than their budget's `pace` while their writers make progress (never for a writer
/// that takes nothing), so a loop of fan-outs runs at the speed of its receivers instead of
/// filling memory. A recipient that is persistently behind (see
/// [`OutboundBudget`](crate::OutboundBudget)) gets its slow-consumer policy for
/// `delivery`: by default it is closed and nobody waits for it; recipients whose policy
/// says [`Wait`](crate::SlowConsumer::Wait) are waited on concurrently. Every recipient is
/// queued before any is waited for. Used by [`InMemoryLifetimeManager`], and by backplanes
/// for their local delivery and for what arrives from other servers.
///
/// The fan-out also gives the scheduler a turn when its task has used up its budget
/// (tokio's cooperative scheduling), so a burst of fan-outs cannot starve the writers that
/// run on the same threads.
///
/// # Errors
///
/// [`SendError::Encode`] when the message cannot be encoded for a recipient's protocol
/// (the other recipients are served).
pub async fn deliver(
    targets: &[Arc<ConnectionHandle>],
    message: &SerializedMessage<'_>,
    delivery: Delivery,
) -> Result<(), SendError> {
    let mut waiting = Vec::new();
    // A protocol the message cannot be encoded for fails its recipients, not the others.
    let mut failed = None;
    let now = tokio::time::Instant::now();
    for connection in targets {
        let bytes = match message.bytes(connection.protocol()) {
            Ok(bytes) => bytes,
            Err(error) => {
                failed.get_or_insert(error);
                continue;
            }
        };
        match connection.try_send_at(bytes, now) {
            Ok(queued) if connection.over_pace(queued) => waiting.push(Waiter::Pace(connection)),
            Ok(_) | Err(TrySendError::Closed) => {}
            Err(TrySendError::Full(bytes)) => {
                waiting.push(Waiter::Deliver(connection, bytes, delivery))
            }
        }
    }
    let mut waiting = waiting
        .into_iter()
        .map(Waiter::run)
        .collect::<FuturesUnordered<_>>();
    while waiting.next().await.is_some() {}
    tokio::task::consume_budget().await;
    failed.map_or(Ok(()), |error| Err(SendError::Encode(error)))
}

/// A recipient a fan-out waits for.
enum Waiter<'a> {
    /// Queued; over its pace.
    Pace(&'a Arc<ConnectionHandle>),
    /// Persistently behind: its policy decides.
    Deliver(&'a Arc<ConnectionHandle>, bytes::Bytes, Delivery),
}

impl Waiter<'_> {
    async fn run(self) {
        match self {
            Self::Pace(connection) => connection.pace().await,
            Self::Deliver(connection, bytes, delivery) => {
                let _ = connection.deliver(bytes, delivery).await;
            }
        }
    }
}
