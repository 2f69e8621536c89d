//! The Redis lifetime manager.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hubs_core::protocol::Protocol;
use hubs_core::{
    ConnectionId, InMemoryLifetimeManager, LifetimeManager, Selection, SendError,
    SerializedMessage, deliver,
};
use tokio::sync::oneshot;

use crate::connection::{Commands, Subscriber};
use crate::envelope::{Envelope, Targets};
use crate::options::RedisOptions;
use crate::outbox::{BackplaneStats, Outbox};
use crate::presence::Keys;

mod connect;
mod lifetime;
mod listener;
mod membership;
mod user_groups;

/// Why a request to another server got no reply.
#[derive(Debug)]
enum RequestError {
    /// Redis did not take it.
    Publish(String),
    /// Nobody answered (no server has the connection).
    NoAnswer,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Publish(error) => f.write_str(error),
            Self::NoAnswer => {
                f.write_str("no answer from the connection's server (it may be gone)")
            }
        }
    }
}

/// From a server's publish to another server's receipt.
const LAG: &str = "signalr_backplane_lag_seconds";

struct Channels {
    base: String,
}

impl Channels {
    fn all(&self) -> String {
        format!("{}:all", self.base)
    }
    fn group(&self, group: &str) -> String {
        format!("{}:group:{group}", self.base)
    }
    fn user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.base)
    }
    fn connection(&self, id: &str) -> String {
        format!("{}:connection:{id}", self.base)
    }
    fn server(&self, id: &str) -> String {
        format!("{}:server:{id}", self.base)
    }
}

/// Routes a hub's messages through Redis pub/sub, so that every server of the hub reaches
/// every client. See the crate docs.
pub struct RedisLifetimeManager {
    local: InMemoryLifetimeManager,
    server_id: String,
    /// The hub's name, as metrics label it.
    hub: String,
    /// Everything this server publishes, in order.
    outbox: Outbox,
    /// The highest packet number seen from each server (to drop duplicates).
    seen: Mutex<HashMap<String, u64>>,
    channels: Channels,
    options: RedisOptions,
    /// For presence reads (writes go through the outbox).
    reader: Commands,
    keys: Keys,
    /// Subscribed channels with how many local reasons each has; held across the
    /// SUBSCRIBE and UNSUBSCRIBE commands, so the count and Redis agree.
    subscriptions: tokio::sync::Mutex<HashMap<String, usize>>,
    sink: Mutex<Option<Subscriber>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Envelope>>>,
    next_request: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RedisLifetimeManager {
    /// This server's id on the backplane.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// What the backplane has published, lost and dropped as duplicates so far.
    pub fn stats(&self) -> BackplaneStats {
        self.outbox.counters.stats()
    }

    async fn subscribe(&self, channel: String) {
        let mut subscriptions = self.subscriptions.lock().await;
        let count = subscriptions.entry(channel.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            let sink = lock(&self.sink).clone();
            if let Some(mut sink) = sink
                && let Err(error) = sink.subscribe(&channel).await
            {
                // Restored when the subscriber reconnects.
                tracing::warn!(%error, %channel, "cannot subscribe; will retry on reconnect");
            }
        }
    }

    async fn unsubscribe(&self, channel: String) {
        let mut subscriptions = self.subscriptions.lock().await;
        let last = match subscriptions.get_mut(&channel) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                subscriptions.remove(&channel);
                true
            }
            None => false,
        };
        if last {
            let sink = lock(&self.sink).clone();
            if let Some(mut sink) = sink {
                let _ = sink.unsubscribe(&channel).await;
            }
        }
    }

    /// Publishes through the outbox and waits until Redis accepted it.
    async fn publish(&self, channel: String, envelope: Envelope) -> Result<(), SendError> {
        self.outbox
            .publish(channel, envelope)
            .await
            .map_err(|error| {
                SendError::Routing(format!(
                    "Redis: {error}; delivered to this server's connections only"
                ))
            })
    }

    /// Publishes a broadcast, encoded once per protocol.
    async fn publish_send(
        &self,
        channel: String,
        targets: Option<Targets>,
        excluded: &[ConnectionId],
        message: &SerializedMessage<'_>,
        confirm: bool,
    ) -> Result<(), SendError> {
        let json = message.bytes(Protocol::Json).map_err(SendError::Encode)?;
        let messagepack = message
            .bytes(Protocol::MessagePack)
            .map_err(SendError::Encode)?;
        let envelope = Envelope::Send {
            origin: self.server_id.clone(),
            targets,
            excluded: excluded.iter().map(ToString::to_string).collect(),
            json: json.to_vec(),
            messagepack: messagepack.to_vec(),
            sent_at_ms: crate::envelope::now_ms(),
        };
        if confirm {
            self.publish(channel, envelope).await
        } else {
            self.outbox.post(channel, envelope)
        }
    }

    /// Publishes a request and waits for its reply on this server's channel.
    async fn request(
        &self,
        channel: String,
        make: impl FnOnce(u64) -> Envelope,
        timeout: Duration,
    ) -> Result<Envelope, RequestError> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request, tx);
        let result = async {
            self.publish(channel, make(request))
                .await
                .map_err(|e| RequestError::Publish(e.to_string()))?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                _ => Err(RequestError::NoAnswer),
            }
        }
        .await;
        lock(&self.pending).remove(&request);
        result
    }

    /// Local connections first, directly (that does not depend on Redis); then one
    /// envelope for the other servers, queued (or, `confirm`ed, published).
    async fn send_to(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
        confirm: bool,
    ) -> Result<(), SendError> {
        let targets = self.local.select(selection);
        deliver(&targets, message, selection.delivery()).await?;
        let remote = |id: &ConnectionId| self.local.connection(id).is_none();
        let everyone = self.channels.all();
        let (channel, targets, excluded): (String, Option<Targets>, &[ConnectionId]) =
            match selection {
                Selection::All => (everyone, None, &[]),
                Selection::AllExcept(excluded) => (everyone, None, excluded),
                Selection::Connection(id) if remote(id) => {
                    (self.channels.connection(id.as_str()), None, &[])
                }
                Selection::Connection(_) => return Ok(()),
                Selection::Group(group) => (self.channels.group(group), None, &[]),
                Selection::GroupExcept(group, excluded) => {
                    (self.channels.group(group), None, excluded)
                }
                Selection::User(user) => (self.channels.user(user), None, &[]),
                // Several groups, users or connections: one envelope every server hears,
                // each choosing among its own connections, so a connection in two of the
                // groups gets it once.
                Selection::Groups(groups) => (everyone, Some(Targets::Groups(groups.clone())), &[]),
                Selection::Users(users) => (everyone, Some(Targets::Users(users.clone())), &[]),
                Selection::Connections(ids) => {
                    let ids: Vec<String> = ids
                        .iter()
                        .filter(|id| remote(id))
                        .map(ToString::to_string)
                        .collect();
                    if ids.is_empty() {
                        return Ok(());
                    }
                    (everyone, Some(Targets::Connections(ids)), &[])
                }
                other => {
                    return Err(SendError::Routing(format!(
                        "unsupported selection {other:?}"
                    )));
                }
            };
        self.publish_send(channel, targets, excluded, message, confirm)
            .await
    }

    async fn add_local(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        if self.local.connection(connection).is_none() {
            return Ok(());
        }
        let before = self
            .local
            .select(&Selection::Group(group.to_owned()))
            .iter()
            .any(|c| c.id() == connection);
        self.local.add_to_group(connection, group).await?;
        if !before {
            self.subscribe(self.channels.group(group)).await;
            let mut add = redis::cmd("SADD");
            add.arg(self.keys.group(group))
                .arg(self.me(connection.as_str()));
            self.outbox.command(add);
            let mut add = redis::cmd("SADD");
            add.arg(self.keys.groups_of(connection.as_str())).arg(group);
            self.outbox.command(add);
        }
        Ok(())
    }

    async fn remove_local(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        let member = self
            .local
            .select(&Selection::Group(group.to_owned()))
            .iter()
            .any(|c| c.id() == connection);
        self.local.remove_from_group(connection, group).await?;
        if member {
            self.unsubscribe(self.channels.group(group)).await;
            let mut remove = redis::cmd("SREM");
            remove
                .arg(self.keys.group(group))
                .arg(self.me(connection.as_str()));
            self.outbox.command(remove);
            let mut remove = redis::cmd("SREM");
            remove
                .arg(self.keys.groups_of(connection.as_str()))
                .arg(group);
            self.outbox.command(remove);
        }
        Ok(())
    }

    async fn change_group(
        &self,
        connection: &ConnectionId,
        group: &str,
        add: bool,
    ) -> Result<(), SendError> {
        if self.local.connection(connection).is_some() {
            return if add {
                self.add_local(connection, group).await
            } else {
                self.remove_local(connection, group).await
            };
        }
        let origin = self.server_id.clone();
        let (connection, group) = (connection.to_string(), group.to_owned());
        self.request(
            self.channels.connection(&connection),
            |request| Envelope::Group {
                origin,
                request,
                connection: connection.clone(),
                group,
                add,
            },
            self.options.reply_timeout,
        )
        .await
        .map(|_| ())
        .map_err(|error| SendError::Routing(error.to_string()))
    }
}
