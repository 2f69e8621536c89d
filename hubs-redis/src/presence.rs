//! Cluster-wide presence in Redis sets: which connections each group and user has, which
//! groups each connection is in, and which server owns each connection.
//!
//! Members are stored as `{server}|{connection}`. Each server keeps a heartbeat key with a
//! short expiry; a member whose server's heartbeat is gone (the server crashed without
//! cleaning up) is left out of every answer and removed when it is read. Writes go
//! through the outbox, in order with the messages; reads go straight to Redis.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::connection::Commands;
use hubs_core::ConnectionId;

/// How long a server's heartbeat lasts, and how often it is renewed.
pub(crate) const HEARTBEAT_TTL: Duration = Duration::from_secs(10);
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

/// The presence keys of one hub.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    /// Presence keys share one hash tag, so on a cluster they live in one slot (reads and
    /// writes of several of them stay one request).
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: format!("{{{base}}}:presence"),
        }
    }
    pub(crate) fn all(&self) -> String {
        format!("{}:all", self.base)
    }
    pub(crate) fn group(&self, group: &str) -> String {
        format!("{}:group:{group}", self.base)
    }
    pub(crate) fn user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.base)
    }
    pub(crate) fn groups_of(&self, connection: &str) -> String {
        format!("{}:groups-of:{connection}", self.base)
    }
    pub(crate) fn owner(&self, connection: &str) -> String {
        format!("{}:owner:{connection}", self.base)
    }
    /// The groups a user is recorded in (group → the end of the record, in ms since the
    /// Unix epoch).
    pub(crate) fn user_groups(&self, user: &str) -> String {
        format!("{}:user-groups:{user}", self.base)
    }
    pub(crate) fn alive(&self, server: &str) -> String {
        format!("{}:alive:{server}", self.base)
    }
}

/// `{server}|{connection}`.
pub(crate) fn member(server: &str, connection: &str) -> String {
    format!("{server}|{connection}")
}

/// The servers among `servers` whose heartbeat is alive.
async fn alive(
    redis: &mut Commands,
    keys: &Keys,
    servers: &HashSet<String>,
) -> redis::RedisResult<HashSet<String>> {
    let servers: Vec<&String> = servers.iter().collect();
    if servers.is_empty() {
        return Ok(HashSet::new());
    }
    let mut pipe = redis::pipe();
    for server in &servers {
        pipe.exists(keys.alive(server));
    }
    let exists: Vec<bool> = pipe.query_async(redis).await?;
    Ok(servers
        .into_iter()
        .zip(exists)
        .filter(|(_, alive)| *alive)
        .map(|(server, _)| server.clone())
        .collect())
}

/// The live connections in the sets `set_keys` (each once), and the members of dead
/// servers found on the way (to remove), by set.
pub(crate) async fn members(
    redis: &mut Commands,
    keys: &Keys,
    set_keys: &[String],
) -> redis::RedisResult<(Vec<ConnectionId>, HashMap<String, Vec<String>>)> {
    let mut pipe = redis::pipe();
    for key in set_keys {
        pipe.smembers(key);
    }
    let sets: Vec<Vec<String>> = pipe.query_async(redis).await?;
    let servers: HashSet<String> = sets
        .iter()
        .flatten()
        .filter_map(|m| m.split_once('|').map(|(s, _)| s.to_owned()))
        .collect();
    let live = alive(redis, keys, &servers).await?;
    let mut seen = HashSet::new();
    let mut connections = Vec::new();
    let mut dead: HashMap<String, Vec<String>> = HashMap::new();
    for (key, set) in set_keys.iter().zip(sets) {
        for entry in set {
            let Some((server, connection)) = entry.split_once('|') else {
                continue;
            };
            if live.contains(server) {
                if seen.insert(connection.to_owned()) {
                    connections.push(ConnectionId::from(connection));
                }
            } else {
                dead.entry(key.clone()).or_default().push(entry.clone());
            }
        }
    }
    Ok((connections, dead))
}

/// The server that owns `connection`, if it is connected to a live one.
pub(crate) async fn owner(
    redis: &mut Commands,
    keys: &Keys,
    connection: &str,
) -> redis::RedisResult<Option<String>> {
    let owner: Option<String> = redis::cmd("GET")
        .arg(keys.owner(connection))
        .query_async(redis)
        .await?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    let live = alive(redis, keys, &HashSet::from([owner.clone()])).await?;
    Ok(live.contains(&owner).then_some(owner))
}
