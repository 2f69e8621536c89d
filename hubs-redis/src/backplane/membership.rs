//! The backplane's presence: the server's heartbeat, and who is connected on every server
//! (read from the presence sets, written through the outbox).

use std::sync::Weak;

use hubs_core::{ConnectionId, LifetimeManager, Selection};

use super::RedisLifetimeManager;
use crate::envelope::Envelope;
use crate::presence::{self, HEARTBEAT_EVERY, HEARTBEAT_TTL};

impl RedisLifetimeManager {
    /// Renews this server's heartbeat (presence entries of servers without one are gone).
    pub(super) async fn beat(&self) {
        let mut redis = self.reader.clone();
        let result: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.keys.alive(&self.server_id))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(HEARTBEAT_TTL.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut redis)
            .await;
        if let Err(error) = result {
            tracing::debug!(%error, "cannot renew the presence heartbeat");
        }
    }

    pub(super) fn me(&self, connection: &str) -> String {
        presence::member(&self.server_id, connection)
    }

    /// Those of `ids` connected to a live server.
    async fn live(&self, ids: &[ConnectionId]) -> Vec<ConnectionId> {
        let mut live = Vec::new();
        let mut redis = self.reader.clone();
        for id in ids {
            let here = self.local.connection(id).is_some();
            if here
                || matches!(
                    presence::owner(&mut redis, &self.keys, id.as_str()).await,
                    Ok(Some(_))
                )
            {
                live.push(id.clone());
            }
        }
        live
    }

    /// Reads presence; on a Redis failure, what this server knows.
    async fn present(&self, sets: Vec<String>, local: &Selection) -> Vec<ConnectionId> {
        let mut redis = self.reader.clone();
        match presence::members(&mut redis, &self.keys, &sets).await {
            Ok((connections, dead)) => {
                for (key, entries) in dead {
                    let mut command = redis::cmd("SREM");
                    command.arg(key).arg(entries);
                    self.outbox.command(command);
                }
                connections
            }
            Err(error) => {
                tracing::debug!(%error, "cannot read presence; answering with this server's connections");
                self.local.connection_ids(local).await
            }
        }
    }

    /// The selected connections on every server, from the presence sets.
    pub(super) async fn present_ids(&self, selection: &Selection) -> Vec<ConnectionId> {
        let keys = &self.keys;
        let except = |ids: Vec<ConnectionId>, excluded: &[ConnectionId]| {
            let excluded: std::collections::HashSet<&ConnectionId> = excluded.iter().collect();
            ids.into_iter()
                .filter(|id| !excluded.contains(id))
                .collect::<Vec<_>>()
        };
        match selection {
            Selection::All => self.present(vec![keys.all()], selection).await,
            Selection::AllExcept(excluded) => {
                except(self.present(vec![keys.all()], selection).await, excluded)
            }
            Selection::Group(group) => self.present(vec![keys.group(group)], selection).await,
            Selection::GroupExcept(group, excluded) => except(
                self.present(vec![keys.group(group)], selection).await,
                excluded,
            ),
            Selection::Groups(groups) => {
                let sets = groups.iter().map(|g| keys.group(g)).collect();
                self.present(sets, selection).await
            }
            Selection::User(user) => self.present(vec![keys.user(user)], selection).await,
            Selection::Users(users) => {
                let sets = users.iter().map(|u| keys.user(u)).collect();
                self.present(sets, selection).await
            }
            Selection::Connection(id) => self.live(std::slice::from_ref(id)).await,
            Selection::Connections(ids) => self.live(ids).await,
            other => self.local.connection_ids(other).await,
        }
    }

    /// The groups of a connection on any server.
    pub(super) async fn present_groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        if self.local.connection(connection).is_some() {
            return self.local.groups_of(connection);
        }
        let mut redis = self.reader.clone();
        match presence::owner(&mut redis, &self.keys, connection.as_str()).await {
            Ok(Some(_)) => redis::cmd("SMEMBERS")
                .arg(self.keys.groups_of(connection.as_str()))
                .query_async(&mut redis)
                .await
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Ends a connection wherever it is, its Close carrying `reason` if there is one;
    /// `true` if it existed.
    pub(super) async fn kick(&self, connection: &ConnectionId, reason: Option<&str>) -> bool {
        if let Some(handle) = self.local.connection(connection) {
            match reason {
                Some(reason) => handle.close_with(reason),
                None => handle.abort(),
            }
            return true;
        }
        if self.live(std::slice::from_ref(connection)).await.is_empty() {
            return false;
        }
        let origin = self.server_id.clone();
        let id = connection.to_string();
        self.request(
            self.channels.connection(&id),
            |request| Envelope::Kick {
                origin,
                request,
                connection: id.clone(),
                reason: reason.map(str::to_owned),
            },
            self.options.reply_timeout,
        )
        .await
        .is_ok()
    }
}

/// Renews the server's presence heartbeat until the backplane is gone.
pub(super) async fn heartbeat(manager: Weak<RedisLifetimeManager>) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        let Some(manager) = manager.upgrade() else {
            return;
        };
        manager.beat().await;
    }
}
