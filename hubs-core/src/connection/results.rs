//! Client results: invocations the server sends a client, waiting for its Completion.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::base::connection_id::ConnectionId;
use crate::base::error::SendError;
use hubs_protocol::{HubError, Outcome};

/// The client results one connection waits for, by invocation id.
#[derive(Debug, Default)]
pub(crate) struct PendingResults {
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_id: AtomicU64,
}

impl PendingResults {
    pub(crate) fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new server-chosen id (`s1`, `s2`, …) and the receiver of its outcome.
    pub(crate) fn register(&self) -> (String, oneshot::Receiver<Outcome>) {
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
pub(crate) struct Registration<'a> {
    pub(crate) results: &'a PendingResults,
    pub(crate) id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.results.forget(&self.id);
    }
}

/// A client result could not be obtained.
///
/// In a hub method, `?` turns it into a [`HubError`] the caller is shown: the official
/// texts for a connection that closed or does not exist, the timeout, the failure a
/// backplane reported, or, for [`Send`](Self::Send), the [`SendError`]'s message. An
/// error the client itself returned is not one of these: it comes back as the `HubError`
/// of the result.
///
/// ```
/// use std::time::Duration;
/// use hubs_core::{ClientResultError, HubError};
///
/// let error: HubError = ClientResultError::Timeout(Duration::from_secs(30)).into();
/// assert_eq!(error.message(), "The client did not return a result within 30s.");
/// ```
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

impl From<ClientResultError> for HubError {
    fn from(error: ClientResultError) -> Self {
        match error {
            ClientResultError::Send(error) => error.into(),
            other => HubError::new(other.to_string()),
        }
    }
}
