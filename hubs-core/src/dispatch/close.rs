//! The close of a connection: why it closed, the Close the client gets, and the order in
//! which everything it held is released.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::connection::close::CloseReason;
use crate::dispatch::hooks::on_disconnected;
use crate::dispatch::task::Task;
use crate::hub::definition::Hub;
use crate::runtime::HubRuntime;
use hubs_protocol::HubError;
use hubs_protocol::wire;
use hubs_protocol::{Close, HubMessage};

impl CloseReason {
    /// The reason something other than the read loop gave, or, when it gave none, the
    /// hub's shutdown or hub code cancelling `connection_closed`.
    pub(crate) fn signalled(reason: Option<&CloseReason>, shutting_down: bool) -> Self {
        match reason {
            Some(reason) => reason.clone(),
            None if shutting_down => Self::Shutdown,
            None => Self::Aborted,
        }
    }

    /// The Close the client gets, if it can still get one.
    fn close(&self) -> Option<Close> {
        match self {
            Self::TransportClosed | Self::TransportLost(_) => None,
            Self::ClientClosed(_) | Self::Aborted => Some(Close::default()),
            Self::Shutdown => Some(Close {
                error: None,
                allow_reconnect: true,
            }),
            Self::SlowConsumer => Some(Close {
                error: Some(wire::closed_with_error(None)),
                allow_reconnect: true,
            }),
            Self::Error {
                text,
                allow_reconnect,
            } => Some(Close {
                error: Some(text.clone()),
                allow_reconnect: *allow_reconnect,
            }),
        }
    }

    /// The `reason` label of the connection's duration.
    fn reason(&self) -> &'static str {
        match self {
            Self::TransportClosed => "transport_closed",
            Self::TransportLost(_) => "transport_lost",
            Self::ClientClosed(_) => "client_closed",
            Self::Aborted => "aborted",
            Self::SlowConsumer => "slow_consumer",
            Self::Shutdown => "shutdown",
            Self::Error { .. } => "error",
        }
    }

    /// What `on_disconnected` is told.
    fn error(self) -> Option<HubError> {
        match self {
            Self::TransportClosed | Self::Aborted | Self::Shutdown => None,
            Self::TransportLost(reason) => Some(HubError::new(reason)),
            Self::ClientClosed(error) => error.map(HubError::new),
            Self::SlowConsumer => Some(HubError::new(
                "the client did not read its messages: its outbound queue stayed full",
            )),
            Self::Error { text, .. } => Some(HubError::new(text)),
        }
    }
}

/// Releases everything the connection held, in order: no more writes (pending client
/// results fail, invocations are cancelled, uploads fail), the final Close, the transport
/// told to close, routing forgets the connection (and its groups), then
/// `on_disconnected`.
pub(crate) async fn tear_down<H: Hub>(
    runtime: &Arc<HubRuntime<H>>,
    cx: Task<H>,
    why: CloseReason,
    closed: &CancellationToken,
) {
    let handle = cx.handle().clone();
    handle.close_handle().mark_closed();
    handle.results.fail_all();
    cx.streams().close();
    if matches!(why, CloseReason::SlowConsumer) {
        // What it is behind on goes (it was counted and logged when it was cut): its Close
        // is next, as soon as the socket takes anything, and the memory comes back now.
        handle.queue().discard();
    }
    if let Some(close) = why.close() {
        handle.push_final(&HubMessage::Close(close));
    }
    closed.cancel();
    runtime.shared.lifetime.on_disconnected(&handle).await;
    handle.meters.closed(why.reason());
    tracing::info!(
        reason = why.reason(),
        duration_ms = u64::try_from(handle.meters.age().as_millis()).unwrap_or(u64::MAX),
        detail = ?why,
        "disconnected"
    );
    if AssertUnwindSafe(on_disconnected(cx, why.error()))
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("on_disconnected panicked");
    }
}
