//! Floor 2, connection plumbing: one connection's sending end ([`ConnectionHandle`](handle::ConnectionHandle)) and
//! outbound queue, how it closes ([`CloseHandle`](close::CloseHandle)), its client results and streams, and the
//! contract with transports ([`TransportConnection`](transport::TransportConnection) in, [`Connected`](transport::Connected) out).

pub(crate) mod close;
pub(crate) mod handle;
pub(crate) mod identity;
pub(crate) mod outbound;
pub(crate) mod results;
pub(crate) mod streams;
pub(crate) mod transport;
