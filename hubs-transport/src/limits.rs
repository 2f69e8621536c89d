//! Caps on connections: per server and per endpoint, held by each running connection
//! until it closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many connections run at once, against a maximum.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    active: AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    pub(crate) fn new(max: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            active: AtomicUsize::new(0),
            max: max.unwrap_or(usize::MAX),
        })
    }

    pub(crate) fn is_full(&self) -> bool {
        self.active.load(Ordering::Acquire) >= self.max
    }

    /// A place for one more connection, if there is room.
    fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < self.max).then_some(active + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// How many connections run now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
struct Slot(Arc<ConnectionLimit>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's places on the server and on its endpoint.
#[derive(Debug)]
pub(crate) struct Admission {
    _server: Slot,
    _endpoint: Slot,
}

/// Admits one more connection if both the server and the endpoint have room.
pub(crate) fn admit(
    server: &Arc<ConnectionLimit>,
    endpoint: &Arc<ConnectionLimit>,
) -> Option<Admission> {
    let server = server.try_acquire()?;
    let endpoint = endpoint.try_acquire()?;
    Some(Admission {
        _server: server,
        _endpoint: endpoint,
    })
}

/// Connections per user on one endpoint, against a maximum.
#[derive(Debug)]
pub(crate) struct UserLimit {
    max: usize,
    counts: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl UserLimit {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: std::sync::Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user` runs as many connections as it may.
    pub(crate) fn is_full(&self, user: &str) -> bool {
        self.counts().get(user).is_some_and(|n| *n >= self.max)
    }

    /// A place for one more connection of `user`, if it has room.
    pub(crate) fn try_acquire(self: &Arc<Self>, user: &str) -> Option<UserSlot> {
        let mut counts = self.counts();
        let count = counts.entry(user.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            limit: self.clone(),
            user: user.to_owned(),
        })
    }
}

/// One connection's place among its user's; given back when dropped.
#[derive(Debug)]
pub(crate) struct UserSlot {
    limit: Arc<UserLimit>,
    user: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts();
        if let Some(count) = counts.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_needs_room_on_both_and_is_given_back() {
        let server = ConnectionLimit::new(Some(2));
        let a = ConnectionLimit::new(Some(1));
        let b = ConnectionLimit::new(None);
        let first = admit(&server, &a).expect("room");
        assert!(admit(&server, &a).is_none(), "the endpoint is full");
        assert_eq!(
            server.active(),
            1,
            "a refused admission gives its server place back"
        );
        let second = admit(&server, &b).expect("room");
        assert!(server.is_full());
        assert!(admit(&server, &b).is_none(), "the server is full");
        drop((first, second));
        assert_eq!((server.active(), a.active(), b.active()), (0, 0, 0));
    }
}
