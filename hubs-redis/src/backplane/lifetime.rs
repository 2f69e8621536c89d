//! The backplane as a `LifetimeManager`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hubs_core::protocol::{Outcome, Protocol, Value};
use hubs_core::{
    Arguments, ClientResultError, ConnectionHandle, ConnectionId, LifetimeManager, Selection,
    SendError, SerializedMessage,
};

use super::{RedisLifetimeManager, RequestError};
use crate::envelope::{Envelope, WireOutcome};

#[async_trait]
impl LifetimeManager for RedisLifetimeManager {
    async fn on_connected(&self, connection: Arc<ConnectionHandle>) {
        let id = connection.id().to_string();
        let user = connection.user().map(str::to_owned);
        self.local.on_connected(connection).await;
        self.subscribe(self.channels.connection(&id)).await;
        let me = self.me(&id);
        let mut add = redis::cmd("SADD");
        add.arg(self.keys.all()).arg(&me);
        self.outbox.command(add);
        let mut owner = redis::cmd("SET");
        owner.arg(self.keys.owner(&id)).arg(&self.server_id);
        self.outbox.command(owner);
        if let Some(user) = user {
            self.subscribe(self.channels.user(&user)).await;
            let mut add = redis::cmd("SADD");
            add.arg(self.keys.user(&user)).arg(&me);
            self.outbox.command(add);
            // The groups the user is recorded in, on any server, take this connection.
            let connection = ConnectionId::from(id.as_str());
            for group in self.recorded_user_groups(&user).await {
                if let Err(error) = self.add_local(&connection, &group).await {
                    tracing::debug!(%error, group, "cannot add a connection to its user's group");
                }
            }
        }
    }

    async fn on_disconnected(&self, connection: &ConnectionHandle) {
        let groups: Vec<String> = self.local.groups_of(connection.id());
        self.local.on_disconnected(connection).await;
        self.unsubscribe(self.channels.connection(connection.id().as_str()))
            .await;
        let id = connection.id().as_str();
        let me = self.me(id);
        let mut remove = redis::cmd("SREM");
        remove.arg(self.keys.all()).arg(&me);
        self.outbox.command(remove);
        let mut forget = redis::cmd("DEL");
        forget.arg(self.keys.owner(id)).arg(self.keys.groups_of(id));
        self.outbox.command(forget);
        if let Some(user) = connection.user() {
            self.unsubscribe(self.channels.user(user)).await;
            let mut remove = redis::cmd("SREM");
            remove.arg(self.keys.user(user)).arg(&me);
            self.outbox.command(remove);
        }
        for group in groups {
            self.unsubscribe(self.channels.group(&group)).await;
            let mut remove = redis::cmd("SREM");
            remove.arg(self.keys.group(&group)).arg(&me);
            self.outbox.command(remove);
        }
    }

    async fn send(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        self.send_to(selection, message, false).await
    }

    async fn send_confirmed(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        self.send_to(selection, message, true).await
    }

    async fn add_to_group(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        self.change_group(connection, group, true).await
    }

    async fn remove_from_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), SendError> {
        self.change_group(connection, group, false).await
    }

    fn connection(&self, id: &ConnectionId) -> Option<Arc<ConnectionHandle>> {
        self.local.connection(id)
    }

    /// The selected connections on every server (from the presence sets, so fan-out
    /// client results reach them all).
    async fn connection_ids(&self, selection: &Selection) -> Vec<ConnectionId> {
        self.present_ids(selection).await
    }

    async fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        self.present_groups_of(connection).await
    }

    async fn abort(&self, connection: &ConnectionId) -> bool {
        self.kick(connection, None).await
    }

    async fn close(&self, connection: &ConnectionId, reason: Option<&str>) -> bool {
        self.kick(connection, reason).await
    }

    async fn add_user_to_group(
        &self,
        user: &str,
        group: &str,
        until: SystemTime,
    ) -> Result<(), SendError> {
        self.record_user_group(user, group, until).await
    }

    async fn remove_user_from_group(&self, user: &str, group: &str) -> Result<(), SendError> {
        self.forget_user_group(user, group).await
    }

    async fn user_groups(&self, user: &str) -> Vec<String> {
        self.recorded_user_groups(user).await
    }

    async fn invoke(
        &self,
        connection: &ConnectionId,
        target: &str,
        arguments: &(dyn Arguments + Send),
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        if self.local.connection(connection).is_some() {
            return self
                .local
                .invoke(connection, target, arguments, timeout)
                .await;
        }
        let encode = |protocol| {
            arguments
                .to_values(protocol)
                .map(|values| {
                    values
                        .into_iter()
                        .map(|v| serde_bytes::ByteBuf::from(v.as_bytes().to_vec()))
                        .collect::<Vec<_>>()
                })
                .map_err(|e| ClientResultError::Send(SendError::Encode(e)))
        };
        let json = encode(Protocol::Json)?;
        let messagepack = encode(Protocol::MessagePack)?;
        let origin = self.server_id.clone();
        let id = connection.to_string();
        let reply = self
            .request(
                self.channels.connection(&id),
                |request| Envelope::Invoke {
                    origin,
                    request,
                    connection: id.clone(),
                    target: target.to_owned(),
                    json,
                    messagepack,
                    timeout_ms: timeout.as_millis() as u64,
                },
                // The owning server enforces the timeout; allow for the round trip.
                timeout + self.options.reply_timeout,
            )
            .await
            .map_err(|error| match error {
                RequestError::NoAnswer => ClientResultError::NoConnection(connection.clone()),
                RequestError::Publish(error) => ClientResultError::Send(SendError::Routing(error)),
            })?;
        match reply {
            Envelope::Result { outcome, .. } => match outcome {
                WireOutcome::Void => Ok(Outcome::Void),
                WireOutcome::Value { messagepack, bytes } => Ok(Outcome::Result(Value::from_raw(
                    if messagepack {
                        Protocol::MessagePack
                    } else {
                        Protocol::Json
                    },
                    bytes,
                ))),
                WireOutcome::Error(error) => Ok(Outcome::Error(error)),
                WireOutcome::Failed(error) => Err(ClientResultError::Remote(error)),
            },
            _ => Err(ClientResultError::NoConnection(connection.clone())),
        }
    }
}
