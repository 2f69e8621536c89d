//! The in-memory lifetime manager: every connection of the hub is on this server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::base::connection_id::ConnectionId;
use crate::base::error::SendError;
use crate::connection::handle::ConnectionHandle;
use crate::connection::results::ClientResultError;
use crate::routing::deliver::deliver;
use crate::routing::lifetime::LifetimeManager;
use crate::routing::message::SerializedMessage;
use crate::routing::selection::Selection;
use crate::routing::user_groups::UserGroups;
use hubs_protocol::Arguments;
use hubs_protocol::Outcome;

/// The default lifetime manager: every connection of the hub is on this server.
#[derive(Debug, Default)]
pub struct InMemoryLifetimeManager {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<ConnectionId, Arc<ConnectionHandle>>,
    groups: HashMap<String, HashSet<ConnectionId>>,
    users: HashMap<String, HashSet<ConnectionId>>,
    memberships: HashMap<ConnectionId, HashSet<String>>,
    /// Users recorded in groups: their connections join when they start.
    user_groups: UserGroups,
}

impl InMemoryLifetimeManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many connections are connected.
    pub fn connection_count(&self) -> usize {
        self.read().connections.len()
    }

    /// How many groups have members.
    pub fn group_count(&self) -> usize {
        self.read().groups.len()
    }

    /// The groups a local connection is in.
    pub fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        self.read()
            .memberships
            .get(connection)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The local connections a selection names.
    pub fn select(&self, selection: &Selection) -> Vec<Arc<ConnectionHandle>> {
        let state = self.read();
        let by_id = |id: &ConnectionId| state.connections.get(id).cloned();
        let members = |group: &str| state.groups.get(group).into_iter().flatten();
        let of_user = |user: &str| state.users.get(user).into_iter().flatten();
        match selection {
            Selection::All => state.connections.values().cloned().collect(),
            Selection::AllExcept(excluded) => state
                .connections
                .values()
                .filter(|c| !excluded.contains(c.id()))
                .cloned()
                .collect(),
            Selection::Connection(id) => by_id(id).into_iter().collect(),
            Selection::Connections(ids) => unique(ids.iter()).filter_map(by_id).collect(),
            Selection::Group(group) => members(group).filter_map(by_id).collect(),
            Selection::Groups(groups) => unique(groups.iter().flat_map(|g| members(g)))
                .filter_map(by_id)
                .collect(),
            Selection::GroupExcept(group, excluded) => members(group)
                .filter(|id| !excluded.contains(id))
                .filter_map(by_id)
                .collect(),
            Selection::User(user) => of_user(user).filter_map(by_id).collect(),
            Selection::Users(users) => unique(users.iter().flat_map(|u| of_user(u)))
                .filter_map(by_id)
                .collect(),
        }
    }
}

/// Shrinks a map that is mostly empty.
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

fn unique<'a>(
    ids: impl Iterator<Item = &'a ConnectionId>,
) -> impl Iterator<Item = &'a ConnectionId> {
    let mut seen = HashSet::new();
    ids.filter(move |id| seen.insert(*id))
}

#[async_trait]
impl LifetimeManager for InMemoryLifetimeManager {
    async fn on_connected(&self, connection: Arc<ConnectionHandle>) {
        let mut state = self.write();
        let id = connection.id().clone();
        if let Some(user) = connection.user() {
            state
                .users
                .entry(user.to_owned())
                .or_default()
                .insert(id.clone());
            for group in state.user_groups.live(user, SystemTime::now()) {
                state
                    .groups
                    .entry(group.clone())
                    .or_default()
                    .insert(id.clone());
                state
                    .memberships
                    .entry(id.clone())
                    .or_default()
                    .insert(group);
            }
        }
        state.connections.insert(id, connection);
    }

    async fn on_disconnected(&self, connection: &ConnectionHandle) {
        let mut state = self.write();
        let id = connection.id();
        state.connections.remove(id);
        if let Some(user) = connection.user()
            && let Some(ids) = state.users.get_mut(user)
        {
            ids.remove(id);
            if ids.is_empty() {
                state.users.remove(user);
            }
        }
        for group in state.memberships.remove(id).unwrap_or_default() {
            if let Some(members) = state.groups.get_mut(&group) {
                members.remove(id);
                if members.is_empty() {
                    state.groups.remove(&group);
                }
            }
        }
        // Give memory back after a wave of connections has gone.
        shrink(&mut state.connections);
        shrink(&mut state.groups);
        shrink(&mut state.users);
        shrink(&mut state.memberships);
    }

    async fn send(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        let targets = self.select(selection);
        deliver(&targets, message, selection.delivery()).await
    }

    async fn add_to_group(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        let mut state = self.write();
        if !state.connections.contains_key(connection) {
            return Ok(());
        }
        state
            .groups
            .entry(group.to_owned())
            .or_default()
            .insert(connection.clone());
        state
            .memberships
            .entry(connection.clone())
            .or_default()
            .insert(group.to_owned());
        Ok(())
    }

    async fn remove_from_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), SendError> {
        let mut state = self.write();
        if let Some(members) = state.groups.get_mut(group) {
            members.remove(connection);
            if members.is_empty() {
                state.groups.remove(group);
            }
        }
        if let Some(groups) = state.memberships.get_mut(connection) {
            groups.remove(group);
        }
        Ok(())
    }

    fn connection(&self, id: &ConnectionId) -> Option<Arc<ConnectionHandle>> {
        self.read().connections.get(id).cloned()
    }

    async fn add_user_to_group(
        &self,
        user: &str,
        group: &str,
        until: SystemTime,
    ) -> Result<(), SendError> {
        self.write().user_groups.add(user, group, until);
        Ok(())
    }

    async fn remove_user_from_group(&self, user: &str, group: &str) -> Result<(), SendError> {
        self.write().user_groups.remove(user, group);
        Ok(())
    }

    async fn user_groups(&self, user: &str) -> Vec<String> {
        self.write().user_groups.live(user, SystemTime::now())
    }

    async fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        InMemoryLifetimeManager::groups_of(self, connection)
    }

    async fn connection_ids(&self, selection: &Selection) -> Vec<ConnectionId> {
        self.select(selection)
            .iter()
            .map(|c| c.id().clone())
            .collect()
    }

    async fn invoke(
        &self,
        connection: &ConnectionId,
        target: &str,
        arguments: &(dyn Arguments + Send),
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        let handle = self
            .connection(connection)
            .ok_or_else(|| ClientResultError::NoConnection(connection.clone()))?;
        handle.invoke(target, arguments, timeout).await
    }
}
