//! Streams both ways: [`Upload`] (client to server) and [`ClientStream`] (server to
//! client).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use hubs_protocol::{HubMessage, Outcome, Protocol, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::command::{self, Call, Command};
use crate::error::InvokeError;

/// A stream of items sent to the server with a call (an `UploadStream` on the hub side).
pub struct Upload {
    stream: Pin<Box<dyn Stream<Item = Box<dyn ErasedItem>> + Send>>,
}

trait ErasedItem: Send {
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

/// Sends one upload's items, then its Completion, each once the previous is on its way. Stops
/// when the connection closes (it holds no strong reference to it).
pub(crate) async fn run_upload(
    commands: mpsc::WeakUnboundedSender<Command>,
    protocol: Protocol,
    id: String,
    mut upload: Upload,
) {
    let send = |message: HubMessage| {
        let commands = commands.clone();
        async move {
            let Some(bytes) = command::encode(protocol, &message) else {
                return false;
            };
            let Some(commands) = commands.upgrade() else {
                return false;
            };
            let (sent, on_its_way) = oneshot::channel();
            if commands
                .send(Command::Send {
                    bytes,
                    call: Call::None,
                    sent: Some(sent),
                })
                .is_err()
            {
                return false;
            }
            drop(commands);
            matches!(on_its_way.await, Ok(Ok(())))
        }
    };
    let mut outcome = Outcome::Void;
    while let Some(item) = upload.stream.next().await {
        match item.encode(protocol) {
            Ok(value) => {
                if !send(command::stream_item(id.clone(), value)).await {
                    return;
                }
            }
            Err(error) => {
                outcome = Outcome::Error(format!("cannot encode an upload item: {error}"));
                break;
            }
        }
    }
    send(command::completion(id, outcome)).await;
}

/// Items of a server-to-client stream, buffered until read. Dropping it before its
/// completion cancels the stream on the server.
pub struct ClientStream<T> {
    items: mpsc::UnboundedReceiver<Result<Value, InvokeError>>,
    id: String,
    commands: mpsc::WeakUnboundedSender<Command>,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> ClientStream<T> {
    pub(crate) fn new(
        items: mpsc::UnboundedReceiver<Result<Value, InvokeError>>,
        id: String,
        commands: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        Self {
            items,
            id,
            commands,
            done: false,
            _item: std::marker::PhantomData,
        }
    }
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

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.items.poll_recv(cx) {
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
    /// Tells the supervisor, which cancels the stream on the server if it is still running.
    /// Needs no runtime.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Cancel(std::mem::take(&mut self.id)));
        }
    }
}
