//! Users recorded in groups, each record until its expiry: what a lifetime manager applies
//! to the connections a user opens while the record lasts.

use std::collections::HashMap;
use std::time::SystemTime;

/// The user-group records of one server (the in-memory manager's; a backplane keeps its
/// own where every server reads them).
#[derive(Debug, Default)]
pub(crate) struct UserGroups {
    /// By user: group → the end of the membership.
    records: HashMap<String, HashMap<String, SystemTime>>,
    /// How many users had records after the last sweep of every user.
    swept: usize,
}

impl UserGroups {
    /// Records `user` in `group` until `until` (replacing an earlier record).
    pub(crate) fn add(&mut self, user: &str, group: &str, until: SystemTime) {
        self.records
            .entry(user.to_owned())
            .or_default()
            .insert(group.to_owned(), until);
        let now = SystemTime::now();
        self.prune(user, now);
        // The records of users who never come back end too: once the users have doubled
        // since the last sweep, every expired record goes.
        if self.records.len() > self.swept.max(64) * 2 {
            self.records.retain(|_, groups| {
                groups.retain(|_, until| *until > now);
                !groups.is_empty()
            });
            self.swept = self.records.len();
        }
    }

    /// Forgets the record of `user` in `group`.
    pub(crate) fn remove(&mut self, user: &str, group: &str) {
        if let Some(groups) = self.records.get_mut(user) {
            groups.remove(group);
            if groups.is_empty() {
                self.records.remove(user);
            }
        }
    }

    /// The groups `user` is recorded in at `now`; expired records are dropped.
    pub(crate) fn live(&mut self, user: &str, now: SystemTime) -> Vec<String> {
        self.prune(user, now);
        self.records
            .get(user)
            .map(|groups| groups.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn prune(&mut self, user: &str, now: SystemTime) {
        if let Some(groups) = self.records.get_mut(user) {
            groups.retain(|_, until| *until > now);
            if groups.is_empty() {
                self.records.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn records_last_until_their_expiry() {
        let mut records = UserGroups::default();
        let now = SystemTime::now();
        records.add("ann", "a", now + Duration::from_secs(60));
        records.add("ann", "b", now + Duration::from_secs(1));
        assert_eq!(records.live("ann", now + Duration::from_secs(2)), ["a"]);
        records.remove("ann", "a");
        assert!(records.live("ann", now).is_empty());
        assert!(records.records.is_empty());
    }

    #[test]
    fn expired_records_of_absent_users_are_swept() {
        let mut records = UserGroups::default();
        let past = SystemTime::now() - Duration::from_secs(1);
        for user in 0..1000 {
            records
                .records
                .entry(user.to_string())
                .or_default()
                .insert("g".into(), past);
            records.add("live", "g", SystemTime::now() + Duration::from_secs(60));
        }
        assert!(records.records.len() <= 129, "{}", records.records.len());
    }
}
