//! What the handles and tasks of a connection tell its supervisor ([`Command`]), and the
//! messages they send through it, encoded by whoever holds the protocol.

use std::time::Duration;

use bytes::Bytes;
use hubs_protocol::{
    CancelInvocation, Completion, HubMessage, Outcome, Protocol, StreamItem, Value,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::{InvokeError, RefreshError, StartError};

/// Told once a message is handed to the transport (or cannot be).
pub(crate) type Sent = oneshot::Sender<Result<(), InvokeError>>;

/// What a handle asks of the supervisor.
pub(crate) enum Command {
    Start(oneshot::Sender<Result<(), StartError>>),
    Stop(oneshot::Sender<()>),
    /// An encoded trackable message, and what waits for its answer.
    Send {
        bytes: Bytes,
        call: Call,
        sent: Option<Sent>,
    },
    /// A [`ClientStream`](crate::stream::ClientStream) was dropped before its completion.
    Cancel(String),
    /// Refresh the connection's authentication now.
    Refresh(Refreshed),
}

/// Told how an authentication refresh ended: the new token lifetime, or why it failed.
pub(crate) type Refreshed = oneshot::Sender<Result<Option<Duration>, RefreshError>>;

/// What waits for the answer to a message.
pub(crate) enum Call {
    None,
    Invoke(String, oneshot::Sender<Result<Outcome, InvokeError>>),
    Stream(String, mpsc::UnboundedSender<Result<Value, InvokeError>>),
}

/// Encodes a message for `protocol` (what tasks without a connection handle send).
pub(crate) fn encode(protocol: Protocol, message: &HubMessage) -> Option<Bytes> {
    let mut bytes = Vec::new();
    match protocol.encode(message, &mut bytes) {
        Ok(()) => Some(bytes.into()),
        Err(error) => {
            tracing::debug!(%error, "cannot encode a message");
            None
        }
    }
}

/// A Completion carrying `outcome` for invocation or stream `id`.
pub(crate) fn completion(id: String, outcome: Outcome) -> HubMessage {
    HubMessage::Completion(Completion {
        headers: Default::default(),
        invocation_id: id,
        outcome,
    })
}

/// A stream item for upload `id`.
pub(crate) fn stream_item(id: String, item: Value) -> HubMessage {
    HubMessage::StreamItem(StreamItem {
        headers: Default::default(),
        invocation_id: id,
        item,
    })
}

/// The CancelInvocation for stream `id`.
pub(crate) fn cancel(id: String) -> HubMessage {
    HubMessage::CancelInvocation(CancelInvocation {
        headers: Default::default(),
        invocation_id: id,
    })
}
