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
    LifetimeManager, PerProtocol, Selection, SendError, SerializedMessage, deliver,
};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use tokio::sync::oneshot;

use crate::envelope::{Envelope, WireOutcome};

/// Where the backplane's Redis is, and how its channels are named.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    url: String,
    prefix: String,
    reply_timeout: Duration,
}

impl RedisOptions {
    /// Redis at `url` (`redis://host:port/db`), channel prefix `hubs`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "hubs".to_owned(),
            reply_timeout: Duration::from_secs(5),
        }
    }

    /// The channel prefix, so that several applications can share one Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for another server to acknowledge a group change (default 5 s).
    #[must_use]
    pub fn reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }
}

/// Redis could not be reached at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {message}")]
pub struct ConnectError {
    url: String,
    message: String,
}

/// Publishes that failed for good (after retries).
const PUBLISH_FAILURES: &str = "signalr_backplane_publish_failures_total";
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
    publish_warnings: hubs_core::Throttle,
    channels: Channels,
    options: RedisOptions,
    publisher: ConnectionManager,
    client: redis::Client,
    /// Subscribed channels with how many local reasons each has.
    subscriptions: Mutex<HashMap<String, usize>>,
    sink: Mutex<Option<PubSubSink>>,
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
        .map_err(|_| ConnectError {
            url: options.url.clone(),
            message: "timed out".to_owned(),
        })?
        .map_err(error)?;
        let pubsub = client.get_async_pubsub().await.map_err(error)?;
        let manager = Arc::new(Self {
            local: InMemoryLifetimeManager::new(),
            server_id: ConnectionId::generate().to_string(),
            hub: hub.to_owned(),
            publish_warnings: hubs_core::Throttle::new(),
            channels: Channels {
                base: format!("{}:{hub}", options.prefix),
            },
            options,
            publisher,
            client,
            subscriptions: Mutex::new(HashMap::new()),
            sink: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        });
        let (sink, stream) = pubsub.split();
        *lock(&manager.sink) = Some(sink);
        manager.subscribe(manager.channels.all()).await;
        manager
            .subscribe(manager.channels.server(&manager.server_id))
            .await;
        tokio::spawn(listen(Arc::downgrade(&manager), stream));
        Ok(manager)
    }

    /// This server's id on the backplane.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    async fn subscribe(&self, channel: String) {
        let first = {
            let mut subscriptions = lock(&self.subscriptions);
            let count = subscriptions.entry(channel.clone()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
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
        let last = {
            let mut subscriptions = lock(&self.subscriptions);
            match subscriptions.get_mut(&channel) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    subscriptions.remove(&channel);
                    true
                }
                None => false,
            }
        };
        if last {
            let sink = lock(&self.sink).clone();
            if let Some(mut sink) = sink {
                let _ = sink.unsubscribe(&channel).await;
            }
        }
    }

    /// Publishes, retrying briefly: the first command after Redis came back fails while
    /// the connection manager reconnects.
    async fn publish(&self, channel: String, envelope: &Envelope) -> Result<(), SendError> {
        let payload = envelope.encode();
        let mut publisher = self.publisher.clone();
        let mut attempt = 0;
        loop {
            match publisher.publish::<_, _, ()>(&channel, &payload).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt >= 2 => {
                    metrics::counter!(PUBLISH_FAILURES, "hub" => self.hub.clone()).increment(1);
                    if let Some(count) = self.publish_warnings.allow() {
                        tracing::warn!(%error, count, hub = %self.hub, "publishing to Redis fails; other servers miss these messages");
                    }
                    return Err(SendError::Routing(format!(
                        "Redis: {error}; delivered to this server's connections only"
                    )));
                }
                Err(error) => {
                    tracing::debug!(%error, attempt, "publish failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
            }
        }
    }

    /// Publishes a broadcast, encoded once per protocol.
    async fn publish_send(
        &self,
        channel: String,
        excluded: &[ConnectionId],
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        let json = message.bytes(Protocol::Json).map_err(SendError::Encode)?;
        let messagepack = message
            .bytes(Protocol::MessagePack)
            .map_err(SendError::Encode)?;
        let envelope = Envelope::Send {
            origin: self.server_id.clone(),
            excluded: excluded.iter().map(ToString::to_string).collect(),
            json: json.to_vec(),
            messagepack: messagepack.to_vec(),
            sent_at_ms: crate::envelope::now_ms(),
        };
        self.publish(channel, &envelope).await
    }

    /// Publishes a request and waits for its reply on this server's channel.
    async fn request(
        &self,
        channel: String,
        make: impl FnOnce(u64) -> Envelope,
        timeout: Duration,
    ) -> Result<Envelope, String> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request, tx);
        let result = async {
            self.publish(channel, &make(request))
                .await
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                _ => Err("no answer from the connection's server (it may be gone)".to_owned()),
            }
        }
        .await;
        lock(&self.pending).remove(&request);
        result
    }

    /// Handles what arrived on one of our channels.
    async fn receive(self: Arc<Self>, channel: &str, envelope: Envelope) {
        match envelope {
            Envelope::Send {
                origin,
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
                let selection = if rest == "all" {
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
                    .publish(self.channels.server(&origin), &Envelope::Ack { request })
                    .await;
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
                    let _ = manager
                        .publish(manager.channels.server(&origin), &reply)
                        .await;
                });
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
        .map_err(SendError::Routing)
    }
}

/// Reads the subscription; on loss, reconnects with backoff and restores every channel.
async fn listen(manager: Weak<RedisLifetimeManager>, mut stream: redis::aio::PubSubStream) {
    loop {
        while let Some(message) = stream.next().await {
            let Some(manager) = manager.upgrade() else {
                return;
            };
            let channel = message.get_channel_name().to_owned();
            if let Some(envelope) = Envelope::decode(message.get_payload_bytes()) {
                manager.receive(&channel, envelope).await;
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
            let Ok(pubsub) = current.client.get_async_pubsub().await else {
                continue;
            };
            let (mut sink, next) = pubsub.split();
            let channels: Vec<String> = lock(&current.subscriptions).keys().cloned().collect();
            let mut ok = true;
            for channel in &channels {
                if sink.subscribe(channel).await.is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                *lock(&current.sink) = Some(sink);
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
        if let Some(user) = user {
            self.subscribe(self.channels.user(&user)).await;
        }
    }

    async fn on_disconnected(&self, connection: &ConnectionHandle) {
        let groups: Vec<String> = self.local.groups_of(connection.id());
        self.local.on_disconnected(connection).await;
        self.unsubscribe(self.channels.connection(connection.id().as_str()))
            .await;
        if let Some(user) = connection.user() {
            self.unsubscribe(self.channels.user(user)).await;
        }
        for group in groups {
            self.unsubscribe(self.channels.group(&group)).await;
        }
    }

    async fn send(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        // Local connections first, directly: that does not depend on Redis.
        let targets = self.local.select(selection);
        deliver(&targets, message, selection.delivery()).await?;
        let remote = |id: &ConnectionId| self.local.connection(id).is_none();
        match selection {
            Selection::All => self.publish_send(self.channels.all(), &[], message).await,
            Selection::AllExcept(excluded) => {
                self.publish_send(self.channels.all(), excluded, message)
                    .await
            }
            Selection::Connection(id) => {
                if remote(id) {
                    self.publish_send(self.channels.connection(id.as_str()), &[], message)
                        .await
                } else {
                    Ok(())
                }
            }
            Selection::Connections(ids) => {
                for id in ids.iter().filter(|id| remote(id)) {
                    self.publish_send(self.channels.connection(id.as_str()), &[], message)
                        .await?;
                }
                Ok(())
            }
            Selection::Group(group) => {
                self.publish_send(self.channels.group(group), &[], message)
                    .await
            }
            Selection::GroupExcept(group, excluded) => {
                self.publish_send(self.channels.group(group), excluded, message)
                    .await
            }
            Selection::Groups(groups) => {
                for group in groups {
                    self.publish_send(self.channels.group(group), &[], message)
                        .await?;
                }
                Ok(())
            }
            Selection::User(user) => {
                self.publish_send(self.channels.user(user), &[], message)
                    .await
            }
            Selection::Users(users) => {
                for user in users {
                    self.publish_send(self.channels.user(user), &[], message)
                        .await?;
                }
                Ok(())
            }
            other => Err(SendError::Routing(format!(
                "unsupported selection {other:?}"
            ))),
        }
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

    /// Local connections only: fan-out client results reach this server's connections.
    async fn connection_ids(&self, selection: &Selection) -> Vec<ConnectionId> {
        self.local.connection_ids(selection).await
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
            .map_err(|_| ClientResultError::NoConnection(connection.clone()))?;
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
