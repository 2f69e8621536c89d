//! Raw connection endpoints (ASP.NET Core's `MapConnectionHandler`): negotiate and the
//! three transports, but no handshake and no hub protocol. The handler sees the bytes the
//! client sends and writes bytes back.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use hubs_core::{
    BoxFuture, CancellationToken, CloseHandle, Connected, ConnectionClosed, ConnectionId, Frame,
    HubEndpoint, HubOptions, Incoming, OutboundQueue, Request, TransportConnection, TransportKind,
};

type Handler = dyn Fn(RawConnection) -> BoxFuture<()> + Send + Sync;

/// One client of a raw connection endpoint (see
/// [`Server::connection_handler`](crate::Server::connection_handler)).
///
/// [`recv`](Self::recv) yields what the client sent, one transport message at a time (a
/// WebSocket message, an HTTP POST body); [`send`](Self::send) and
/// [`send_binary`](Self::send_binary) queue data for it. The connection closes when the
/// handler's future returns: what is queued is written, then the transport closes (a
/// WebSocket close with code 1000). When the client closes (a WebSocket close, a
/// long-polling `DELETE`), `recv` yields `None`; when the transport fails (a failed
/// write, a dropped event stream, a long poll that never came) or the server shuts down,
/// the handler's future is dropped.
pub struct RawConnection {
    id: ConnectionId,
    request: Request,
    transport: TransportKind,
    incoming: Incoming,
    outgoing: RawSender,
}

/// Sends to one raw connection; cheap to clone, usable from other tasks.
#[derive(Clone, Debug)]
pub struct RawSender {
    queue: Arc<OutboundQueue>,
    /// Cancelled once the connection has closed (its handler returned or it failed).
    closed: CancellationToken,
}

impl RawSender {
    /// Queues a text message (a text WebSocket frame; SSE and long polling carry text
    /// as is), then waits while the connection's queue holds more than its budget's
    /// `pace` (the endpoint's [`OutboundBudget`](hubs_core::OutboundBudget)).
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection has closed.
    pub async fn send(&self, text: impl Into<Bytes>) -> Result<(), ConnectionClosed> {
        self.push(Frame {
            bytes: text.into(),
            binary: false,
            sequenced: false,
        })
        .await
    }

    /// Queues a binary message (a binary WebSocket frame). Server-Sent Events carry text
    /// only, so on that transport the bytes should be UTF-8.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection has closed.
    pub async fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), ConnectionClosed> {
        self.push(Frame {
            bytes: bytes.into(),
            binary: true,
            sequenced: false,
        })
        .await
    }

    async fn push(&self, frame: Frame) -> Result<(), ConnectionClosed> {
        if self.closed.is_cancelled() {
            return Err(ConnectionClosed);
        }
        self.queue.push(frame);
        let pace = self.queue.budget().pace;
        tokio::select! {
            () = self.queue.under(pace) => {
                if self.queue.is_abandoned() {
                    return Err(ConnectionClosed);
                }
                Ok(())
            }
            () = self.closed.cancelled() => Err(ConnectionClosed),
        }
    }
}

impl RawConnection {
    /// The connection id.
    pub fn id(&self) -> &ConnectionId {
        &self.id
    }

    /// The HTTP request that opened the transport.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The authenticated user, if the endpoint authenticates requests.
    pub fn user(&self) -> Option<&hubs_core::User> {
        self.request.user()
    }

    /// The transport carrying the connection.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// The next message from the client, or `None` once the client has gone (or its
    /// transport failed).
    pub async fn recv(&mut self) -> Option<Bytes> {
        match self.incoming.next().await? {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::debug!(%error, "raw connection transport failed");
                None
            }
        }
    }

    /// Queues a text message; see [`RawSender::send`]. (It takes `&mut self` so that the
    /// handler's future stays `Send`; [`sender`](Self::sender) gives a shareable handle.)
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection has closed.
    pub async fn send(&mut self, text: impl Into<Bytes>) -> Result<(), ConnectionClosed> {
        self.outgoing.send(text).await
    }

    /// Queues a binary message; see [`RawSender::send_binary`].
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection has closed.
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) -> Result<(), ConnectionClosed> {
        self.outgoing.send_binary(bytes).await
    }

    /// A sender for other tasks.
    pub fn sender(&self) -> RawSender {
        self.outgoing.clone()
    }
}

/// A mounted raw connection handler, as transports see it.
pub(crate) struct RawEndpoint {
    handler: Box<Handler>,
    options: HubOptions,
    shutdown: CancellationToken,
}

impl RawEndpoint {
    pub(crate) fn new<F, Fut>(handler: F, options: HubOptions) -> Self
    where
        F: Fn(RawConnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            handler: Box::new(move |connection| Box::pin(handler(connection))),
            options,
            shutdown: CancellationToken::new(),
        }
    }
}

impl HubEndpoint for RawEndpoint {
    fn options(&self) -> &HubOptions {
        &self.options
    }

    fn connect(self: Arc<Self>, connection: TransportConnection) -> Connected {
        let (queue, outgoing) = OutboundQueue::new(self.options.configured_outbound_budget());
        let queue = Arc::new(queue);
        let closed = CancellationToken::new();
        let close_handle = CloseHandle::new();
        let raw = RawConnection {
            id: connection.connection_id,
            request: connection.request,
            transport: connection.transport,
            incoming: connection.incoming,
            outgoing: RawSender {
                queue,
                closed: closed.clone(),
            },
        };
        let handler = (self.handler)(raw);
        let task = {
            let closed = closed.clone();
            let close_handle = close_handle.clone();
            let shutdown = self.shutdown.clone();
            Box::pin(async move {
                tokio::select! {
                    () = handler => {}
                    () = close_handle.closed() => {}
                    () = shutdown.cancelled() => {}
                }
                closed.cancel();
            })
        };
        Connected {
            outgoing,
            closed,
            close_handle,
            task,
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn whole_messages(&self) -> bool {
        true
    }

    fn shutdown(&self) {
        self.shutdown.cancel();
    }
}
