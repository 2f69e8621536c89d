//! Joining the backplane: the Redis connections (one Redis, or a cluster's nodes), the
//! manager, its first subscriptions, then the listener and the heartbeat.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hubs_core::{ConnectionId, InMemoryLifetimeManager};
use redis::aio::ConnectionManagerConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder};

use super::listener::{Incoming, listen, listen_cluster};
use super::membership::heartbeat;
use super::{Channels, RedisLifetimeManager};
use crate::connection::{Commands, Subscriber};
use crate::options::{ConnectError, RedisOptions};
use crate::outbox::Outbox;
use crate::presence::Keys;

/// The connections to Redis: one to publish and run commands on, one to subscribe with,
/// and what the subscription hears.
type Connections = (Commands, Subscriber, Incoming);

impl RedisLifetimeManager {
    /// Connects to Redis for the hub named `hub` (its channels are
    /// `{prefix}:{hub}:…`; every server of the hub must use the same name).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when Redis cannot be reached.
    pub async fn connect(options: RedisOptions, hub: &str) -> Result<Arc<Self>, ConnectError> {
        let (publisher, subscriber, incoming) = match &options.cluster {
            None => open_single(&options.url).await?,
            Some(nodes) => open_cluster(&options.url, nodes).await?,
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
}

/// The connections to one Redis at `url`.
async fn open_single(url: &str) -> Result<Connections, ConnectError> {
    let client = redis::Client::open(url).map_err(|e| refused(url, e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    let publisher = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_connection_manager_with_config(config),
    )
    .await
    .map_err(|_| refused(url, "timed out"))?
    .map_err(|e| refused(url, e))?;
    let pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| refused(url, e))?;
    let (sink, stream) = pubsub.split();
    Ok((
        Commands::Single(publisher),
        Subscriber::Single(sink),
        Incoming::Single(client, stream),
    ))
}

/// The connections to a cluster reached through `nodes` (errors name `url`, the options'
/// URL).
async fn open_cluster(url: &str, nodes: &[String]) -> Result<Connections, ConnectError> {
    let commands = ClusterClient::new(nodes.to_vec()).map_err(|e| refused(url, e))?;
    let publisher = tokio::time::timeout(Duration::from_secs(5), commands.get_async_connection())
        .await
        .map_err(|_| refused(url, "timed out"))?
        .map_err(|e| refused(url, e))?;
    // Sharded messages arrive as RESP3 pushes; the client resubscribes by itself after a
    // reconnect or a resharding.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let subscriptions = ClusterClientBuilder::new(nodes.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .build()
        .map_err(|e| refused(url, e))?;
    let subscriber =
        tokio::time::timeout(Duration::from_secs(5), subscriptions.get_async_connection())
            .await
            .map_err(|_| refused(url, "timed out"))?
            .map_err(|e| refused(url, e))?;
    Ok((
        Commands::Cluster(publisher),
        Subscriber::Cluster(subscriber),
        Incoming::Cluster(rx),
    ))
}

/// Redis at `url` could not be reached, for `reason`.
fn refused(url: &str, reason: impl ToString) -> ConnectError {
    ConnectError {
        url: url.to_owned(),
        message: reason.to_string(),
    }
}
