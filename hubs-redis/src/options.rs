//! How to reach Redis, and the backplane's limits.

use std::time::Duration;

/// Where the backplane's Redis is, and how its channels are named.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) reply_timeout: Duration,
    pub(crate) outbox_capacity: usize,
    pub(crate) publish_patience: Duration,
    pub(crate) cluster: Option<Vec<String>>,
}

impl RedisOptions {
    /// Redis at `url` (`redis://host:port/db`), channel prefix `hubs`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "hubs".to_owned(),
            reply_timeout: Duration::from_secs(5),
            outbox_capacity: 10_000,
            publish_patience: Duration::from_secs(10),
            cluster: None,
        }
    }

    /// A Redis Cluster reached through any of `nodes` (`redis://host:port`), with sharded
    /// pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7+): each channel lives on the shard that
    /// owns its slot, so pub/sub traffic spreads over the cluster. Presence keys share one
    /// hash tag, so they live on one shard.
    ///
    /// ```
    /// use hubs_redis::RedisOptions;
    ///
    /// let options = RedisOptions::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// # let _ = options;
    /// ```
    pub fn cluster<I>(nodes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        Self {
            url: nodes.join(","),
            cluster: Some(nodes),
            ..Self::new("")
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

    /// How many messages for other servers may wait to be published (default 10,000).
    /// Past it, sends fail with `SendError::Routing` (after their local delivery).
    #[must_use]
    pub fn outbox_capacity(mut self, messages: usize) -> Self {
        self.outbox_capacity = messages.max(1);
        self
    }

    /// How long the outbox keeps retrying a publish while Redis is unreachable or hung
    /// (default 10 s); what is still unpublished then is counted as lost and logged.
    #[must_use]
    pub fn publish_patience(mut self, patience: Duration) -> Self {
        self.publish_patience = patience;
        self
    }
}

/// Redis could not be reached at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {message}")]
pub struct ConnectError {
    pub(crate) url: String,
    pub(crate) message: String,
}
