//! How a server hears the other servers: the subscription (one Redis, or a cluster's
//! sharded pushes), the duplicate check, and what each envelope means here.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hubs_core::protocol::{Outcome, Protocol, Value};
use hubs_core::{
    ConnectionId, HubError, LifetimeManager, PerProtocol, Selection, SerializedMessage, deliver,
};
use serde_bytes::ByteBuf;

use super::{LAG, RedisLifetimeManager, lock};
use crate::connection::Subscriber;
use crate::envelope::{Envelope, Packet, Targets, WireOutcome};

impl RedisLifetimeManager {
    /// Whether `packet` is new: numbers from one server only grow, so one at or below the
    /// highest seen is a duplicate (a publish retried after Redis had accepted it).
    fn first_time(&self, packet: &Packet) -> bool {
        let mut seen = lock(&self.seen);
        let highest = seen.entry(packet.origin.clone()).or_insert(0);
        if packet.seq <= *highest {
            self.outbox
                .counters
                .duplicates_dropped
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *highest = packet.seq;
        true
    }

    /// Handles what arrived on one of our channels.
    async fn receive(self: Arc<Self>, channel: &str, envelope: Envelope) {
        match envelope {
            Envelope::Send {
                origin,
                targets,
                excluded,
                json,
                messagepack,
                sent_at_ms,
            } => {
                if origin == self.server_id {
                    return;
                }
                if sent_at_ms > 0 {
                    let lag = crate::envelope::now_ms().saturating_sub(sent_at_ms);
                    metrics::histogram!(LAG, "hub" => self.hub.clone()).record(lag as f64 / 1000.0);
                }
                let excluded: Vec<ConnectionId> =
                    excluded.into_iter().map(ConnectionId::from).collect();
                let Some(selection) = self.selection(channel, targets, excluded) else {
                    return;
                };
                let message = SerializedMessage::encoded(
                    Some(Bytes::from(json)),
                    Some(Bytes::from(messagepack)),
                );
                // Paced by the recipients that are reading, never held up by one that is
                // not: the listener serves them all (and yields to their writers).
                let targets = self.local.select(&selection);
                if let Err(error) = deliver(&targets, &message, selection.delivery()).await {
                    tracing::warn!(%error, "cannot deliver a message from the backplane");
                }
            }
            Envelope::Group {
                origin,
                request,
                connection,
                group,
                add,
            } => {
                let id = ConnectionId::from(connection);
                if add {
                    let _ = self.add_local(&id, &group).await;
                } else {
                    let _ = self.remove_local(&id, &group).await;
                }
                let _ = self
                    .outbox
                    .post(self.channels.server(&origin), Envelope::Ack { request });
            }
            Envelope::Invoke {
                origin,
                request,
                connection,
                target,
                json,
                messagepack,
                timeout_ms,
            } => {
                let call = RemoteCall {
                    connection: ConnectionId::from(connection),
                    target,
                    arguments: (json, messagepack),
                    timeout: Duration::from_millis(timeout_ms),
                };
                tokio::spawn(self.clone().invoke_local(origin, request, call));
            }
            Envelope::Kick {
                origin,
                request,
                connection,
                reason,
            } => {
                if let Some(handle) = self.local.connection(&ConnectionId::from(connection)) {
                    match reason {
                        Some(reason) => handle.close_with(reason),
                        None => handle.abort(),
                    }
                    let _ = self
                        .outbox
                        .post(self.channels.server(&origin), Envelope::Ack { request });
                }
            }
            reply @ (Envelope::Ack { .. } | Envelope::Result { .. }) => {
                let request = match &reply {
                    Envelope::Ack { request } | Envelope::Result { request, .. } => *request,
                    _ => return,
                };
                if let Some(waiting) = lock(&self.pending).remove(&request) {
                    let _ = waiting.send(reply);
                }
            }
        }
    }

    /// Whom a broadcast that arrived on `channel` is for, among this server's
    /// connections: its explicit `targets`, else what the channel names. `None` for a
    /// channel that is not ours.
    fn selection(
        &self,
        channel: &str,
        targets: Option<Targets>,
        excluded: Vec<ConnectionId>,
    ) -> Option<Selection> {
        let rest = channel.strip_prefix(&format!("{}:", self.channels.base))?;
        Some(if let Some(targets) = targets {
            match targets {
                Targets::Groups(groups) => Selection::Groups(groups),
                Targets::Users(users) => Selection::Users(users),
                Targets::Connections(ids) => {
                    Selection::Connections(ids.into_iter().map(ConnectionId::from).collect())
                }
            }
        } else if rest == "all" {
            Selection::AllExcept(excluded)
        } else if let Some(group) = rest.strip_prefix("group:") {
            Selection::GroupExcept(group.to_owned(), excluded)
        } else if let Some(user) = rest.strip_prefix("user:") {
            Selection::User(user.to_owned())
        } else if let Some(id) = rest.strip_prefix("connection:") {
            Selection::Connection(ConnectionId::from(id))
        } else {
            return None;
        })
    }

    /// Runs another server's client-result call on one of this server's connections and
    /// posts the outcome back to `origin`.
    async fn invoke_local(self: Arc<Self>, origin: String, request: u64, call: RemoteCall) {
        let (json, messagepack) = call.arguments;
        let arguments = PerProtocol::new(
            json.into_iter()
                .map(|b| Value::from_raw(Protocol::Json, b.into_vec()))
                .collect::<Vec<_>>(),
            messagepack
                .into_iter()
                .map(|b| Value::from_raw(Protocol::MessagePack, b.into_vec()))
                .collect(),
        );
        let outcome = self
            .local
            .invoke(&call.connection, &call.target, &arguments, call.timeout)
            .await;
        let outcome = match outcome {
            Ok(Outcome::Void) => WireOutcome::Void,
            Ok(Outcome::Result(value)) => WireOutcome::Value {
                messagepack: value.protocol() == Protocol::MessagePack,
                bytes: value.as_bytes().to_vec(),
            },
            Ok(Outcome::Error(error)) => WireOutcome::Error(error),
            // The words a caller on this server would see (`?` in a hub method).
            Err(error) => WireOutcome::Failed(HubError::from(error).message().to_owned()),
        };
        let reply = Envelope::Result { request, outcome };
        let _ = self.outbox.post(self.channels.server(&origin), reply);
    }
}

/// A client-result call another server asked this one to run.
struct RemoteCall {
    connection: ConnectionId,
    target: String,
    /// The arguments, encoded per protocol (JSON, MessagePack).
    arguments: (Vec<ByteBuf>, Vec<ByteBuf>),
    timeout: Duration,
}

/// How a server hears its channels.
pub(super) enum Incoming {
    Single(redis::Client, redis::aio::PubSubStream),
    Cluster(tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>),
}

/// Reads a cluster's sharded messages (RESP3 pushes).
pub(super) async fn listen_cluster(
    manager: Weak<RedisLifetimeManager>,
    mut pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    while let Some(push) = pushes.recv().await {
        let Some(manager) = manager.upgrade() else {
            return;
        };
        if push.kind != redis::PushKind::SMessage {
            continue;
        }
        let mut data = push.data.into_iter();
        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
            continue;
        };
        let (Ok(channel), Ok(payload)) = (
            redis::from_redis_value::<String>(channel),
            redis::from_redis_value::<Vec<u8>>(payload),
        ) else {
            continue;
        };
        if let Some(packet) = Packet::decode(&payload)
            && manager.first_time(&packet)
        {
            manager.receive(&channel, packet.envelope).await;
        }
    }
}

/// Reads the subscription; on loss, reconnects with backoff and restores every channel.
pub(super) async fn listen(
    manager: Weak<RedisLifetimeManager>,
    client: redis::Client,
    mut stream: redis::aio::PubSubStream,
) {
    loop {
        while let Some(message) = stream.next().await {
            let Some(manager) = manager.upgrade() else {
                return;
            };
            let channel = message.get_channel_name().to_owned();
            if let Some(packet) = Packet::decode(message.get_payload_bytes())
                && manager.first_time(&packet)
            {
                manager.receive(&channel, packet.envelope).await;
            }
        }
        // Lost: reconnect and resubscribe.
        let mut delay = Duration::from_millis(100);
        loop {
            let Some(current) = manager.upgrade() else {
                return;
            };
            tracing::warn!("lost the Redis subscription; reconnecting");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            let Ok(pubsub) = client.get_async_pubsub().await else {
                continue;
            };
            let (mut sink, next) = pubsub.split();
            let channels: Vec<String> =
                current.subscriptions.lock().await.keys().cloned().collect();
            let mut ok = true;
            for channel in &channels {
                if sink.subscribe(channel).await.is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                *lock(&current.sink) = Some(Subscriber::Single(sink));
                tracing::info!(channels = channels.len(), "Redis subscription restored");
                stream = next;
                break;
            }
        }
    }
}
