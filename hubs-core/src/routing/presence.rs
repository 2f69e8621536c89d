//! Who is connected, and where: membership and presence across every server of a hub
//! (through its lifetime manager), and closing any connection by id.

use std::sync::Arc;

use crate::base::connection_id::ConnectionId;
use crate::routing::lifetime::LifetimeManager;
use crate::routing::selection::Selection;

/// Membership and presence of a hub's connections, on every server of a backplane (in
/// memory, on this one). From [`Context::presence`](crate::Context::presence) or
/// [`HubContext::presence`](crate::HubContext::presence).
///
/// ```no_run
/// # async fn f(presence: hubs_core::Presence) {
/// let mut members = presence.group_members("room").await;
/// members.sort();
/// let online = presence.count(&hubs_core::Selection::All).await;
/// # let _ = (members, online);
/// # }
/// ```
#[derive(Clone)]
pub struct Presence {
    lifetime: Arc<dyn LifetimeManager>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").finish_non_exhaustive()
    }
}

impl Presence {
    pub(crate) fn new(lifetime: Arc<dyn LifetimeManager>) -> Self {
        Self { lifetime }
    }

    /// The connections in `group`.
    pub async fn group_members(&self, group: &str) -> Vec<ConnectionId> {
        self.lifetime
            .connection_ids(&Selection::Group(group.to_owned()))
            .await
    }

    /// The connections of `user`.
    pub async fn user_connections(&self, user: &str) -> Vec<ConnectionId> {
        self.lifetime
            .connection_ids(&Selection::User(user.to_owned()))
            .await
    }

    /// The groups `connection` is in.
    pub async fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        self.lifetime.groups_of(connection).await
    }

    /// The connections a selection names.
    pub async fn connections(&self, selection: &Selection) -> Vec<ConnectionId> {
        self.lifetime.connection_ids(selection).await
    }

    /// How many connections a selection names.
    pub async fn count(&self, selection: &Selection) -> usize {
        self.lifetime.connection_ids(selection).await.len()
    }

    /// Ends `connection` wherever it is: it gets a Close without an error and is told not
    /// to reconnect, as with [`Context::abort`](crate::Context::abort). `true` if it
    /// existed.
    pub async fn kick(&self, connection: &ConnectionId) -> bool {
        self.lifetime.abort(connection).await
    }

    /// Ends `connection` wherever it is, as [`kick`](Self::kick) does; with a `reason`,
    /// the client's Close carries it as its error (the client reports it). `true` if it
    /// existed.
    pub async fn close(&self, connection: &ConnectionId, reason: Option<&str>) -> bool {
        self.lifetime.close(connection, reason).await
    }
}
