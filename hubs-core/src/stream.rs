//! Streams in both directions: what a streaming hub method returns, and what a client
//! uploads to one.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context as TaskContext, Poll};

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{HubError, InvokeError};
use crate::protocol::{Protocol, Value};

/// The items of a server-to-client stream, encoded for the caller's protocol.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<Value, InvokeError>> + Send>>;

/// One uploaded item as it arrived, or the error the client ended the upload with.
pub(crate) type UploadItem = Result<Value, String>;

/// How many uploaded items wait for the hub method before the connection stops reading
/// (`StreamBufferCapacity`).
pub(crate) const UPLOAD_CAPACITY: usize = 10;

/// Items a client streams to a hub method: a parameter of this type receives one of the
/// invocation's `streamIds`.
///
/// Each item is bound to `T`. If the client ends the upload with an error, the stream
/// yields it as a [`HubError`] carrying the client's text, so `?` fails the method with
/// `… HubException: {text}`, as the official server does. The stream also ends when the
/// connection does.
///
/// ```
/// use futures_util::StreamExt;
/// use hubs_core::{HubError, UploadStream};
///
/// async fn concat(mut parts: UploadStream<String>) -> Result<String, HubError> {
///     let mut text = String::new();
///     while let Some(part) = parts.next().await {
///         text.push_str(&part?);
///     }
///     Ok(text)
/// }
/// ```
pub struct UploadStream<T> {
    rx: mpsc::Receiver<UploadItem>,
    _item: PhantomData<fn() -> T>,
}

impl<T> UploadStream<T> {
    pub(crate) fn new(rx: mpsc::Receiver<UploadItem>) -> Self {
        Self {
            rx,
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for UploadStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadStream").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Stream for UploadStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|item| match item {
                Ok(value) => value
                    .deserialize()
                    .map_err(|e| HubError::new(format!("cannot bind a stream item: {e}"))),
                Err(text) => Err(HubError::new(text)),
            })
        })
    }
}

/// A streaming method's items, encoded for `protocol`.
pub fn reply_stream<T, S>(protocol: Protocol, stream: S) -> ReplyStream
where
    T: Serialize,
    S: Stream<Item = T> + Send + 'static,
{
    Box::pin(stream.map(move |item| Value::serialize(protocol, &item).map_err(InvokeError::Encode)))
}

/// A streaming method's items that may fail; an `Err` ends the stream with
/// `An error occurred on the server while streaming results.`
pub fn reply_fallible_stream<T, E, S>(protocol: Protocol, stream: S) -> ReplyStream
where
    T: Serialize,
    E: fmt::Display + 'static,
    S: Stream<Item = Result<T, E>> + Send + 'static,
{
    Box::pin(stream.map(move |item| match item {
        Ok(item) => Value::serialize(protocol, &item).map_err(InvokeError::Encode),
        Err(error) => Err(InvokeError::failed(error)),
    }))
}

/// A channel receiver as a stream.
pub fn receiver_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// The streams of one connection: downloads by invocation id (to cancel them) and
/// uploads by stream id (to feed them).
#[derive(Debug, Default)]
pub(crate) struct StreamRegistry {
    downloads: Mutex<HashMap<String, CancellationToken>>,
    uploads: Mutex<HashMap<String, mpsc::Sender<UploadItem>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StreamRegistry {
    /// Registers a download; `false` if the id is in use.
    pub(crate) fn start_download(&self, id: &str, token: CancellationToken) -> bool {
        let mut downloads = lock(&self.downloads);
        if downloads.contains_key(id) {
            return false;
        }
        downloads.insert(id.to_owned(), token);
        true
    }

    /// Cancels a download; `false` if there is none with that id.
    pub(crate) fn cancel_download(&self, id: &str) -> bool {
        match lock(&self.downloads).get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub(crate) fn end_download(&self, id: &str) {
        lock(&self.downloads).remove(id);
    }

    /// Opens uploads for `ids`; `None` if one of them is in use.
    pub(crate) fn open_uploads(&self, ids: &[String]) -> Option<Vec<mpsc::Receiver<UploadItem>>> {
        let mut uploads = lock(&self.uploads);
        if ids.iter().any(|id| uploads.contains_key(id)) {
            return None;
        }
        Some(
            ids.iter()
                .map(|id| {
                    let (tx, rx) = mpsc::channel(UPLOAD_CAPACITY);
                    uploads.insert(id.clone(), tx);
                    rx
                })
                .collect(),
        )
    }

    /// Where the items of upload `id` go.
    pub(crate) fn upload(&self, id: &str) -> Option<mpsc::Sender<UploadItem>> {
        lock(&self.uploads).get(id).cloned()
    }

    /// Ends upload `id`; returns its sender so an error can still be delivered.
    pub(crate) fn end_upload(&self, id: &str) -> Option<mpsc::Sender<UploadItem>> {
        lock(&self.uploads).remove(id)
    }

    /// Ends uploads whose method has returned; later items are ignored.
    pub(crate) fn end_uploads(&self, ids: &[String]) {
        let mut uploads = lock(&self.uploads);
        for id in ids {
            uploads.remove(id);
        }
    }

    /// The connection ended: stop everything.
    pub(crate) fn close(&self) {
        for (_, token) in lock(&self.downloads).drain() {
            token.cancel();
        }
        lock(&self.uploads).clear();
    }
}
