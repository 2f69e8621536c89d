//! Users recorded in groups, in one Redis hash per user (group → the record's end, in ms
//! since the Unix epoch), so every server applies them to the user's new connections.
//! Written and read straight through Redis (not the outbox): a record must be there
//! before the answer to whoever made it.

use std::time::{SystemTime, UNIX_EPOCH};

use hubs_core::SendError;

use super::RedisLifetimeManager;

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RedisLifetimeManager {
    /// Records `user` in `group` until `until`; the hash lasts as long as its longest
    /// record, so the records of a user who never comes back go away by themselves.
    pub(super) async fn record_user_group(
        &self,
        user: &str,
        group: &str,
        until: SystemTime,
    ) -> Result<(), SendError> {
        let key = self.keys.user_groups(user);
        let until = millis(until);
        let mut redis = self.reader.clone();
        let mut pipe = redis::pipe();
        pipe.hset(&key, group, until).ignore();
        // Keep the key until its longest record ends (GT: never shorten it).
        pipe.cmd("PEXPIREAT")
            .arg(&key)
            .arg(until)
            .arg("GT")
            .ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&key)
            .arg(until)
            .arg("NX")
            .ignore();
        pipe.query_async::<()>(&mut redis)
            .await
            .map_err(|error| SendError::Routing(error.to_string()))
    }

    /// Forgets the record of `user` in `group`.
    pub(super) async fn forget_user_group(&self, user: &str, group: &str) -> Result<(), SendError> {
        let mut redis = self.reader.clone();
        redis::cmd("HDEL")
            .arg(self.keys.user_groups(user))
            .arg(group)
            .query_async::<()>(&mut redis)
            .await
            .map_err(|error| SendError::Routing(error.to_string()))
    }

    /// The groups `user` is recorded in now (expired records are dropped); none when
    /// Redis cannot be read.
    pub(super) async fn recorded_user_groups(&self, user: &str) -> Vec<String> {
        let key = self.keys.user_groups(user);
        let mut redis = self.reader.clone();
        let records: Vec<(String, u64)> = match redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
        {
            Ok(records) => records,
            Err(error) => {
                tracing::debug!(%error, user, "cannot read the user's groups");
                return Vec::new();
            }
        };
        let now = millis(SystemTime::now());
        let (live, expired): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|(_, until)| *until > now);
        if !expired.is_empty() {
            let mut forget = redis::cmd("HDEL");
            forget.arg(&key);
            for (group, _) in &expired {
                forget.arg(group);
            }
            self.outbox.command(forget);
        }
        live.into_iter().map(|(group, _)| group).collect()
    }
}
