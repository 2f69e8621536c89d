//! Floor 1, the base: what every other floor names and nothing here names them. Errors,
//! identity and authorization, streams, filters and limits, services, meters and the
//! slow-consumer budget.

pub(crate) mod authorization;
pub(crate) mod connection_id;
pub(crate) mod error;
pub(crate) mod filter;
pub(crate) mod future;
pub(crate) mod identity;
pub(crate) mod limit;
pub mod meters;
pub(crate) mod outgoing;
pub(crate) mod services;
pub(crate) mod slow_consumer;
pub(crate) mod stream;
pub(crate) mod throttle;
