//! The routing trait: one per hub, in memory or over a backplane.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::base::connection_id::ConnectionId;
use crate::base::error::SendError;
use crate::connection::handle::ConnectionHandle;
use crate::connection::results::ClientResultError;
use crate::routing::message::SerializedMessage;
use crate::routing::selection::Selection;
use hubs_protocol::Arguments;
use hubs_protocol::Outcome;

/// Routes messages to connections and keeps groups; one per hub.
///
/// The in-memory [`InMemoryLifetimeManager`](crate::InMemoryLifetimeManager) is the default. A backplane implements the
/// same trait to reach connections on other servers.
#[async_trait]
pub trait LifetimeManager: Send + Sync + 'static {
    /// A connection completed its handshake.
    async fn on_connected(&self, connection: Arc<ConnectionHandle>);

    /// A connection closed; forget it and its group memberships.
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

    /// Ends a connection wherever it is, as [`abort`](Self::abort) does; with a `reason`,
    /// the client's Close carries it as its error. `true` if it existed.
    async fn close(&self, connection: &ConnectionId, reason: Option<&str>) -> bool {
        match (self.connection(connection), reason) {
            (Some(handle), Some(reason)) => {
                handle.close_with(reason);
                true
            }
            (Some(handle), None) => {
                handle.abort();
                true
            }
            (None, _) => false,
        }
    }

    /// Records that `user` is in `group` until `until`: every connection of the user that
    /// starts meanwhile, on any server, joins the group. Connections already running are
    /// the caller's to add ([`Groups::add_user`](crate::Groups::add_user) does both).
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when the record cannot be stored; the default keeps none.
    async fn add_user_to_group(
        &self,
        user: &str,
        group: &str,
        until: SystemTime,
    ) -> Result<(), SendError> {
        let _ = (user, group, until);
        Err(SendError::Routing(
            "this lifetime manager keeps no user groups".to_owned(),
        ))
    }

    /// Forgets the record that `user` is in `group` (connections already in it stay).
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when the record cannot be removed; the default keeps none.
    async fn remove_user_from_group(&self, user: &str, group: &str) -> Result<(), SendError> {
        let _ = (user, group);
        Err(SendError::Routing(
            "this lifetime manager keeps no user groups".to_owned(),
        ))
    }

    /// The groups `user` is recorded in and whose record has not expired.
    async fn user_groups(&self, user: &str) -> Vec<String> {
        let _ = user;
        Vec::new()
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
