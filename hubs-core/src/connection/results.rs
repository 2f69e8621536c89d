//! Client results: invocations the server sends a client, waiting for its Completion.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::Instrument;

use super::handle::ConnectionHandle;
use crate::connection_id::ConnectionId;
use crate::error::SendError;
use hubs_protocol::Arguments;
use hubs_protocol::{Completion, HubMessage, Invocation, Outcome};

/// The client results one connection waits for, by invocation id.
#[derive(Debug, Default)]
pub(crate) struct PendingResults {
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_id: AtomicU64,
}

impl PendingResults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new server-chosen id (`s1`, `s2`, …) and the receiver of its outcome.
    fn register(&self) -> (String, oneshot::Receiver<Outcome>) {
        let id = format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.clone(), tx);
        (id, rx)
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Fails every pending result (the connection ended).
    pub(crate) fn fail_all(&self) {
        self.lock().clear();
    }
}

/// Removes a pending result however the wait ends.
struct Registration<'a> {
    results: &'a PendingResults,
    id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.results.forget(&self.id);
    }
}

/// A client result could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientResultError {
    /// The connection ended (or the server is shutting down) before the client answered.
    #[error("{}", hubs_protocol::wire::connection_disconnected(.0.as_str()))]
    Disconnected(ConnectionId),
    /// No connection has this id.
    #[error("{}", hubs_protocol::wire::connection_does_not_exist(.0.as_str()))]
    NoConnection(ConnectionId),
    /// The client did not answer in time.
    #[error("The client did not return a result within {0:?}.")]
    Timeout(Duration),
    /// The invocation could not be sent.
    #[error("cannot invoke the client: {0}")]
    Send(#[source] SendError),
    /// The server the connection is on reported this failure (a backplane).
    #[error("{0}")]
    Remote(String),
}

impl ConnectionHandle {
    /// Invokes `target` on this client and waits for its Completion (a client result).
    ///
    /// The Invocation carries a server-chosen id (`s1`, `s2`, …); the wait ends on the
    /// client's Completion, after `timeout`, or when the connection ends.
    ///
    /// # Errors
    ///
    /// [`ClientResultError`] for a disconnect, a timeout or an encoding failure. An error
    /// Completion from the client is not an error here: it is returned as
    /// [`Outcome::Error`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the pending result; a late Completion is then ignored.
    pub async fn invoke(
        &self,
        target: &str,
        arguments: &dyn Arguments,
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        // A child of the hub method's span: the server calling a client.
        let span = tracing::info_span!(
            "signalr.client_result",
            otel.name = target,
            otel.kind = "client",
            rpc.system = "signalr",
            rpc.method = target,
            signalr.connection.id = %self.id(),
        );
        self.invoke_in(target, arguments, timeout)
            .instrument(span)
            .await
    }

    async fn invoke_in(
        &self,
        target: &str,
        arguments: &dyn Arguments,
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        let arguments = arguments
            .to_values(self.protocol())
            .map_err(|e| ClientResultError::Send(SendError::Encode(e)))?;
        let (id, rx) = self.results.register();
        let registration = Registration {
            results: &self.results,
            id,
        };
        let headers = self
            .outgoing
            .headers(crate::filter::OutgoingKind::ClientResult, Some(target))
            .map_err(|dropped| ClientResultError::Send(SendError::Dropped(dropped.0)))?;
        let message = HubMessage::Invocation(Invocation {
            headers,
            invocation_id: Some(registration.id.clone()),
            target: target.to_owned(),
            arguments,
            ..Default::default()
        });
        let disconnected = || ClientResultError::Disconnected(self.id().clone());
        if self.send_message(&message).await.is_err() {
            return Err(disconnected());
        }
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, rx) => match outcome {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(_)) => Err(disconnected()),
                Err(_) => {
                    self.meters.hub().client_result_timeout();
                    Err(ClientResultError::Timeout(timeout))
                }
            },
            () = self.end_handle().ended() => Err(disconnected()),
        };
        drop(registration);
        outcome
    }

    /// Hands a client's Completion to the invocation waiting for it. Returns `false` when
    /// no result with that id is pending.
    pub fn complete(&self, completion: Completion) -> bool {
        match self.results.lock().remove(&completion.invocation_id) {
            Some(waiting) => {
                let _ = waiting.send(completion.outcome);
                true
            }
            None => false,
        }
    }
}
