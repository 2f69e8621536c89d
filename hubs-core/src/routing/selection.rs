//! Which connections a message is for.

use crate::base::connection_id::ConnectionId;
use crate::base::slow_consumer::Delivery;

/// Which connections a message is for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Every connection of the hub.
    All,
    /// Every connection but these.
    AllExcept(Vec<ConnectionId>),
    /// One connection.
    Connection(ConnectionId),
    /// These connections.
    Connections(Vec<ConnectionId>),
    /// The members of a group.
    Group(String),
    /// The members of any of these groups (each connection once).
    Groups(Vec<String>),
    /// The members of a group but these connections.
    GroupExcept(String, Vec<ConnectionId>),
    /// The connections of a user.
    User(String),
    /// The connections of any of these users.
    Users(Vec<String>),
}

impl Selection {
    /// Whether the selection is one connection ([`Delivery::Direct`]) or may be several
    /// ([`Delivery::FanOut`]), for the slow-consumer policy.
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Connection(_) => Delivery::Direct,
            _ => Delivery::FanOut,
        }
    }
}
