//! Floor 3, routing: which connections a message goes to. One trait, [`LifetimeManager`], with the
//! in-memory default ([`InMemoryLifetimeManager`]); a backplane (Redis) implements the
//! same trait. Messages for many recipients are [`SerializedMessage`]s, encoded once per
//! protocol ([`PerProtocol`]).

pub(crate) mod deliver;
pub(crate) mod lifetime;
pub(crate) mod memory;
pub(crate) mod message;
pub(crate) mod presence;
pub(crate) mod recipients;
pub(crate) mod selection;
pub(crate) mod user_groups;

pub use deliver::deliver;
pub use lifetime::LifetimeManager;
pub use memory::InMemoryLifetimeManager;
pub use message::{PerProtocol, SerializedMessage};
pub use presence::Presence;
pub use recipients::{
    Cardinality, ClientFamily, Groups, Many, One, Recipients, Responses, SingleClient, Untyped,
};
pub use selection::Selection;
