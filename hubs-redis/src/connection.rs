//! The two ways to reach Redis: one server (or a primary behind a proxy), or a Redis
//! Cluster with sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7+), behind one interface.

use redis::aio::{ConnectionLike, ConnectionManager, PubSubSink};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Commands: presence reads and writes, heartbeats, publishes.
#[derive(Clone)]
pub(crate) enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Commands {
    /// Whether this is a cluster (publishes are sharded, and sent one by one since they
    /// go to different nodes).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A publish of `payload` on `channel`: `SPUBLISH` on a cluster.
    pub(crate) fn publish(&self, channel: &str, payload: Vec<u8>) -> Cmd {
        let mut command = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        command.arg(channel).arg(payload);
        command
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Where subscriptions are made: the subscribing connection of one server, or the
/// cluster connection whose pushes carry sharded messages.
#[derive(Clone)]
pub(crate) enum Subscriber {
    Single(PubSubSink),
    Cluster(ClusterConnection),
}

impl Subscriber {
    pub(crate) async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(sink) => sink.subscribe(channel).await,
            Self::Cluster(connection) => connection.ssubscribe(channel).await,
        }
    }

    pub(crate) async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(sink) => sink.unsubscribe(channel).await,
            Self::Cluster(connection) => connection.sunsubscribe(channel).await,
        }
    }
}
