//! The fan-out: queue a message on every recipient, pace the sender to the receivers.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::base::error::SendError;
use crate::base::slow_consumer::Delivery;
use crate::connection::handle::{ConnectionHandle, TrySendError};
use crate::routing::message::SerializedMessage;

/// Queues `message` on every connection in `targets`, then waits for those that hold
/// more than their budget's `pace` while their writers make progress (never for a writer
/// that takes nothing), so a loop of fan-outs runs at the speed of its receivers instead of
/// filling memory. A recipient that is persistently behind (see
/// [`OutboundBudget`](crate::base::slow_consumer::OutboundBudget)) gets its slow-consumer policy for
/// `delivery`: by default it is closed and nobody waits for it; recipients whose policy
/// says [`Wait`](crate::SlowConsumer::Wait) are waited on concurrently. Every recipient is
/// queued before any is waited for. Used by [`InMemoryLifetimeManager`](crate::InMemoryLifetimeManager), and by backplanes
/// for their local delivery and for what arrives from other servers.
///
/// The fan-out also gives the scheduler a turn when its task has used up its budget
/// (tokio's cooperative scheduling), so a burst of fan-outs cannot starve the writers that
/// run on the same threads.
///
/// # Errors
///
/// [`SendError::Encode`] when the message cannot be encoded for a recipient's protocol
/// (the other recipients are served).
pub async fn deliver(
    targets: &[Arc<ConnectionHandle>],
    message: &SerializedMessage<'_>,
    delivery: Delivery,
) -> Result<(), SendError> {
    let mut waiting = Vec::new();
    // A protocol the message cannot be encoded for fails its recipients, not the others.
    let mut failed = None;
    let now = tokio::time::Instant::now();
    for connection in targets {
        let bytes = match message.bytes(connection.protocol()) {
            Ok(bytes) => bytes,
            Err(error) => {
                failed.get_or_insert(error);
                continue;
            }
        };
        match connection.try_send_at(bytes, now) {
            Ok(queued) if connection.over_pace(queued) => waiting.push(Waiter::Pace(connection)),
            Ok(_) | Err(TrySendError::Closed) => {}
            Err(TrySendError::Full(bytes)) => {
                waiting.push(Waiter::Deliver(connection, bytes, delivery))
            }
        }
    }
    let mut waiting = waiting
        .into_iter()
        .map(Waiter::run)
        .collect::<FuturesUnordered<_>>();
    while waiting.next().await.is_some() {}
    tokio::task::consume_budget().await;
    failed.map_or(Ok(()), |error| Err(SendError::Encode(error)))
}

/// A recipient a fan-out waits for.
enum Waiter<'a> {
    /// Queued; over its pace.
    Pace(&'a Arc<ConnectionHandle>),
    /// Persistently behind: its policy decides.
    Deliver(&'a Arc<ConnectionHandle>, bytes::Bytes, Delivery),
}

impl Waiter<'_> {
    async fn run(self) {
        match self {
            Self::Pace(connection) => connection.pace().await,
            Self::Deliver(connection, bytes, delivery) => {
                let _ = connection.deliver(bytes, delivery).await;
            }
        }
    }
}
