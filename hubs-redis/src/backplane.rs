//! The Redis lifetime manager.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use hubs_core::protocol::{Outcome, Protocol, Value};
use hubs_core::{
    Arguments, ClientResultError, ConnectionHandle, ConnectionId, InMemoryLifetimeManager,
    LifetimeManager, PerProtocol, Selection, SendError, SerializedMessage, deliver, deliver_now,
};
use redis::aio::ConnectionManagerConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder};

use crate::connection::{Commands, Subscriber};
use tokio::sync::oneshot;

use crate::envelope::{Envelope, Packet, Targets, WireOutcome};
use crate::options::{ConnectError, RedisOptions};
use crate::outbox::{BackplaneStats, Outbox};
use crate::presence::{self, HEARTBEAT_EVERY, HEARTBEAT_TTL, Keys};

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
    /// Connects to Redis for the hub named `hub` (its channels are
    /// `{prefix}:{hub}:…`; every server of the hub must use the same name).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when Redis cannot be reached.
    pub async fn connect(options: RedisOptions, hub: &str) -> Result<Arc<Self>, ConnectError> {
        let error = |e: redis::RedisError| ConnectError {
            url: options.url.clone(),
            message: e.to_string(),
        };
        let timed_out = || ConnectError {
            url: options.url.clone(),
            message: "timed out".to_owned(),
        };
        let (publisher, subscriber, incoming) = match &options.cluster {
            None => {
                let client = redis::Client::open(options.url.as_str()).map_err(error)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1);
                let publisher = tokio::time::timeout(
                    Duration::from_secs(5),
                    client.get_connection_manager_with_config(config),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(error)?;
                let pubsub = client.get_async_pubsub().await.map_err(error)?;
                let (sink, stream) = pubsub.split();
                (
                    Commands::Single(publisher),
                    Subscriber::Single(sink),
                    Incoming::Single(client, stream),
                )
            }
            Some(nodes) => {
                let commands = ClusterClient::new(nodes.clone()).map_err(error)?;
                let publisher =
                    tokio::time::timeout(Duration::from_secs(5), commands.get_async_connection())
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(error)?;
                // Sharded messages arrive as RESP3 pushes; the client resubscribes by
                // itself after a reconnect or a resharding.
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let subscriptions = ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .build()
                    .map_err(error)?;
                let subscriber = tokio::time::timeout(
                    Duration::from_secs(5),
                    subscriptions.get_async_connection(),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(error)?;
                (
                    Commands::Cluster(publisher),
                    Subscriber::Cluster(subscriber),
                    Incoming::Cluster(rx),
                )
            }
        };
        let server_id = ConnectionId::generate().to_string();
        let reader = publisher.clone();
        let outbox = Outbox::start(
            publisher,
            server_id.clone(),
            hub.to_owned(),
            options.outbox_capacity,
            options.publish_patience,
        );
        let manager = Arc::new(Self {
            local: InMemoryLifetimeManager::new(),
            server_id,
            hub: hub.to_owned(),
            outbox,
            seen: Mutex::new(HashMap::new()),
            channels: Channels {
                base: format!("{}:{hub}", options.prefix),
            },
            keys: Keys::new(&format!("{}:{hub}", options.prefix)),
            options,
            reader,
            subscriptions: tokio::sync::Mutex::new(HashMap::new()),
            sink: Mutex::new(Some(subscriber)),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        });
        manager.subscribe(manager.channels.all()).await;
        manager
            .subscribe(manager.channels.server(&manager.server_id))
            .await;
        match incoming {
            Incoming::Single(client, stream) => {
                tokio::spawn(listen(Arc::downgrade(&manager), client, stream));
            }
            Incoming::Cluster(pushes) => {
                tokio::spawn(listen_cluster(Arc::downgrade(&manager), pushes));
            }
        }
        manager.beat().await;
        tokio::spawn(heartbeat(Arc::downgrade(&manager)));
        Ok(manager)
    }

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

    /// Renews this server's heartbeat (presence entries of servers without one are gone).
    async fn beat(&self) {
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

    fn me(&self, connection: &str) -> String {
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
                let Some(rest) = channel.strip_prefix(&format!("{}:", self.channels.base)) else {
                    return;
                };
                let selection = if let Some(targets) = targets {
                    match targets {
                        Targets::Groups(groups) => Selection::Groups(groups),
                        Targets::Users(users) => Selection::Users(users),
                        Targets::Connections(ids) => Selection::Connections(
                            ids.into_iter().map(ConnectionId::from).collect(),
                        ),
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
                    return;
                };
                let message = SerializedMessage::encoded(
                    Some(Bytes::from(json)),
                    Some(Bytes::from(messagepack)),
                );
                // Never waits on one connection: the listener serves them all.
                let targets = self.local.select(&selection);
                if let Err(error) = deliver_now(&targets, &message, selection.delivery()) {
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
                let manager = self.clone();
                tokio::spawn(async move {
                    let arguments = PerProtocol::new(
                        json.into_iter()
                            .map(|b| Value::from_raw(Protocol::Json, b.into_vec()))
                            .collect::<Vec<_>>(),
                        messagepack
                            .into_iter()
                            .map(|b| Value::from_raw(Protocol::MessagePack, b.into_vec()))
                            .collect(),
                    );
                    let id = ConnectionId::from(connection);
                    let outcome = manager
                        .local
                        .invoke(&id, &target, &arguments, Duration::from_millis(timeout_ms))
                        .await;
                    let outcome = match outcome {
                        Ok(Outcome::Void) => WireOutcome::Void,
                        Ok(Outcome::Result(value)) => WireOutcome::Value {
                            messagepack: value.protocol() == Protocol::MessagePack,
                            bytes: value.as_bytes().to_vec(),
                        },
                        Ok(Outcome::Error(error)) => WireOutcome::Error(error),
                        Err(error) => WireOutcome::Failed(error.to_string()),
                    };
                    let reply = Envelope::Result { request, outcome };
                    let _ = manager.outbox.post(manager.channels.server(&origin), reply);
                });
            }
            Envelope::Kick {
                origin,
                request,
                connection,
            } => {
                if let Some(handle) = self.local.connection(&ConnectionId::from(connection)) {
                    handle.abort();
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

/// Renews the server's presence heartbeat until the backplane is gone.
async fn heartbeat(manager: Weak<RedisLifetimeManager>) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        let Some(manager) = manager.upgrade() else {
            return;
        };
        manager.beat().await;
    }
}

/// Reads the subscription; on loss, reconnects with backoff and restores every channel.
/// How a server hears its channels.
enum Incoming {
    Single(redis::Client, redis::aio::PubSubStream),
    Cluster(tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>),
}

/// Reads a cluster's sharded messages (RESP3 pushes).
async fn listen_cluster(
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

async fn listen(
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
        let keys = &self.keys;
        let except = |ids: Vec<ConnectionId>, excluded: &[ConnectionId]| {
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

    async fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
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

    async fn abort(&self, connection: &ConnectionId) -> bool {
        if let Some(handle) = self.local.connection(connection) {
            handle.abort();
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
            },
            self.options.reply_timeout,
        )
        .await
        .is_ok()
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
                RequestError::Publish(error) => ClientResultError::Remote(error),
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
