//! Who a connection is now: the authenticated user it started with, replaced by each
//! accepted authentication refresh (ASP.NET Core 11), and when that credential expires.
//!
//! Routing keeps the connection-start identity (its user id, its groups); what changes is
//! what later invocations see ([`Context::user`](crate::Context::user), per-method
//! authorization) and when the connection closes on expiry.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::base::identity::User;

/// A connection's current user and the expiry of its credential.
#[derive(Debug)]
pub(crate) struct Identity {
    user: RwLock<Option<Arc<User>>>,
    /// The credential's expiry; the close-on-expiry timer watches it.
    expiry: watch::Sender<Option<SystemTime>>,
}

impl Identity {
    pub(crate) fn new(user: Option<Arc<User>>) -> Self {
        let expiry = user.as_deref().and_then(User::expires_at);
        Self {
            user: RwLock::new(user),
            expiry: watch::Sender::new(expiry),
        }
    }

    /// The user as of now.
    pub(crate) fn user(&self) -> Option<Arc<User>> {
        self.user
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// When the current credential expires.
    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        *self.expiry.borrow()
    }

    /// Whether the current credential has expired.
    pub(crate) fn expired(&self) -> bool {
        self.expires_at().is_some_and(|at| at <= SystemTime::now())
    }

    /// Replaces the user with a refreshed one, and its expiry with the new credential's.
    pub(crate) fn replace(&self, user: Arc<User>) {
        let expiry = user.expires_at();
        *self
            .user
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(user);
        self.expiry.send_replace(expiry);
    }

    /// Follows the expiry as refreshes move it.
    pub(crate) fn watch_expiry(&self) -> watch::Receiver<Option<SystemTime>> {
        self.expiry.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_refresh_replaces_the_user_and_moves_the_expiry() {
        let soon = SystemTime::now() + Duration::from_secs(10);
        let identity = Identity::new(Some(Arc::new(User::new("ann").with_expiry(soon))));
        let mut expiry = identity.watch_expiry();
        assert_eq!(identity.expires_at(), Some(soon));
        assert!(!identity.expired());

        let later = soon + Duration::from_secs(60);
        identity.replace(Arc::new(
            User::new("ann").with_role("admin").with_expiry(later),
        ));
        assert!(expiry.has_changed().expect("the sender lives"));
        assert_eq!(*expiry.borrow_and_update(), Some(later));
        assert!(identity.user().expect("a user").is_in_role("admin"));

        identity.replace(Arc::new(
            User::new("ann").with_expiry(SystemTime::now() - Duration::from_secs(1)),
        ));
        assert!(identity.expired());
    }
}
