//! Floor 4, the hub model: the [`Hub`](definition::Hub) trait `#[hub]` implements, its
//! options, the state a hub's connections share, the [`Context`](context::Context) methods
//! receive and the Clients targets.

pub(crate) mod clients;
pub(crate) mod context;
pub(crate) mod definition;
pub(crate) mod options;
pub(crate) mod refresh;
pub(crate) mod shared;
