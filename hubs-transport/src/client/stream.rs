//! Streams both ways: [`Upload`] (client to server) and [`ClientStream`] (server to
//! client).

use super::*;

/// A stream of items sent to the server with a call (an `UploadStream` on the hub side).
pub struct Upload {
    pub(super) stream: Pin<Box<dyn Stream<Item = Box<dyn ErasedItem>> + Send>>,
}

pub(super) trait ErasedItem: Send {
    fn encode(&self, protocol: Protocol) -> Result<Value, String>;
}

impl<T: Serialize + Send> ErasedItem for T {
    fn encode(&self, protocol: Protocol) -> Result<Value, String> {
        Value::serialize(protocol, self).map_err(|e| e.to_string())
    }
}

impl Upload {
    /// Uploads the items of `stream`.
    pub fn new<T, S>(stream: S) -> Self
    where
        T: Serialize + Send + 'static,
        S: Stream<Item = T> + Send + 'static,
    {
        Self {
            stream: Box::pin(stream.map(|item| Box::new(item) as Box<dyn ErasedItem>)),
        }
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload").finish_non_exhaustive()
    }
}

/// Items of a server-to-client stream. Dropping it before the end cancels the stream.
pub struct ClientStream<T> {
    pub(super) rx: mpsc::Receiver<Result<Value, InvokeError>>,
    pub(super) id: String,
    pub(super) inner: std::sync::Weak<Inner>,
    pub(super) done: bool,
    pub(super) _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ClientStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Stream for ClientStream<T> {
    type Item = Result<T, InvokeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => {
                if item.is_err() {
                    self.done = true;
                }
                Poll::Ready(Some(
                    item.and_then(|value| value.deserialize().map_err(InvokeError::Bind)),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for ClientStream<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(inner) = self.inner.upgrade() {
            let removed = lock(&inner.streams).remove(&self.id).is_some();
            if removed {
                let id = self.id.clone();
                tokio::spawn(async move {
                    let _ = inner
                        .send_message(|_| {
                            Ok(HubMessage::CancelInvocation(CancelInvocation {
                                headers: Default::default(),
                                invocation_id: id.clone(),
                            }))
                        })
                        .await;
                });
            }
        }
    }
}
