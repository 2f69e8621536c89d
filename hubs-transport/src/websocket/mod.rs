//! The WebSockets transport: the upgrade, then a connection's read side (frames read in
//! pieces: a WebSocket message is a stream of hub messages, and the hub protocol above
//! applies its limits per hub message) and its writer task.

mod frame;
mod socket;
mod utf8;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hubs_core::{
    Capabilities, Connected, ConnectionId, HubEndpoint, TransportConnection, TransportKind,
};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::body::{self, Body};
pub(crate) use frame::Event;
use frame::FrameReader;
pub(crate) use socket::{Socket, SocketWriter, violation_code};

/// Frames gathered for one write at most, in bytes: a burst goes out in few `send(2)`s.
const BATCH_BYTES: usize = 64 * 1024;

/// The normal close code.
const NORMAL: u16 = 1000;
/// The close code for a message over the size limit.
const TOO_BIG: u16 = 1009;

/// Answers a WebSocket upgrade; the future yields the socket once the client has switched
/// protocols (`None` when the upgrade failed). `Err` is the refusal to send instead.
#[allow(clippy::result_large_err)]
pub(crate) fn accept<B: Send + 'static>(
    request: &mut Request<B>,
    options: &hubs_core::HubOptions,
) -> Result<
    (
        Response<Body>,
        impl std::future::Future<Output = Option<Socket>> + Send + 'static,
    ),
    Response<Body>,
> {
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return Err(body::text(StatusCode::BAD_REQUEST, ""));
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut *request);
    let send_timeout = options.configured_send_timeout();
    let socket = async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "websocket upgrade failed");
                return None;
            }
        };
        Some(Socket::upgraded(upgraded, send_timeout))
    };
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok((response, socket))
}

/// Answers a WebSocket upgrade and runs the connection on the upgraded socket; `on_close`
/// runs once the connection is over (or at once, when the upgrade is refused).
pub(crate) fn upgrade<B: Send + 'static>(
    request: &mut Request<B>,
    endpoint: Arc<dyn HubEndpoint>,
    (connection_id, user): (ConnectionId, Option<Arc<hubs_core::User>>),
    early: Vec<Bytes>,
    on_close: impl FnOnce() + Send + 'static,
) -> Response<Body> {
    let (response, socket) = match accept(request, endpoint.options()) {
        Ok(accepted) => accepted,
        Err(refused) => {
            on_close();
            return refused;
        }
    };
    // What the task holds for the connection's lifetime, it holds small: the upgrade's
    // future and the request are boxed (a spawned future keeps the room of everything
    // it captured until it ends, even once moved out).
    let hub_request =
        Box::new(hubs_core::Request::owned(request.uri(), request.headers()).with_user(user));
    let socket = Box::pin(socket);
    tokio::spawn(async move {
        if let Some(socket) = socket.await {
            run(socket, endpoint, connection_id, *hub_request, early).await;
        }
        on_close();
    });
    response
}

/// Starts the connection on `socket` and spawns its writer; the future it returns holds
/// only the connection's task and the writer's handle.
fn run(
    socket: Socket,
    endpoint: Arc<dyn HubEndpoint>,
    connection_id: ConnectionId,
    request: hubs_core::Request,
    early: Vec<Bytes>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let Socket { reader, writer } = socket;
    // A close frame ends the stream cleanly; a read error (a reset without the closing
    // handshake) ends it with that error. A frame that breaks the WebSocket rules ends it
    // with an `InvalidData` error (the hub answers with a Close message) and picks the
    // close code the writer sends.
    let close_code = Arc::new(AtomicU16::new(NORMAL));
    let pongs = Arc::new(Pongs::default());
    let whole = endpoint
        .whole_messages()
        .then(|| whole_message_limit(endpoint.options()));
    let incoming = Incoming {
        reader,
        close_code: close_code.clone(),
        pongs: pongs.clone(),
        whole,
        message: BytesMut::new(),
    }
    .into_stream();
    let Connected {
        outgoing,
        closed,
        close_handle,
        task,
    } = endpoint.connect(TransportConnection {
        connection_id,
        request,
        transport: TransportKind::WebSockets,
        capabilities: Capabilities::new(true, true),
        incoming: Box::pin(futures_util::stream::iter(early.into_iter().map(Ok)).chain(incoming)),
    });
    // The writer is a task of its own: a frame queued for this connection wakes only it,
    // not the connection's read loop.
    let writer = tokio::spawn(
        Writer {
            socket: writer,
            outgoing,
            closed,
            close_handle,
            pongs,
            close_code,
        }
        .run(),
    );
    async move {
        task.await;
        let _ = writer.await;
    }
}

/// The largest whole message a raw connection endpoint reads: four times the hub limit,
/// at least 1 MiB.
fn whole_message_limit(options: &hubs_core::HubOptions) -> usize {
    options
        .max_message_size_limit()
        .map_or(usize::MAX, |max| max.saturating_mul(4).max(1 << 20))
}

/// The Ping a client sent last, for the writer to answer.
#[derive(Default)]
struct Pongs {
    latest: std::sync::Mutex<Option<Bytes>>,
    due: Notify,
}

impl Pongs {
    fn ask(&self, payload: Bytes) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        self.due.notify_one();
    }

    fn take(&self) -> Option<Bytes> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The read side: what the client sends, as the hub reads it.
struct Incoming {
    reader: FrameReader<socket::ReadSide>,
    close_code: Arc<AtomicU16>,
    pongs: Arc<Pongs>,
    /// Whole messages, up to this size (raw connection endpoints); `None` gives each
    /// piece as it comes (the hub protocol finds its own message boundaries).
    whole: Option<usize>,
    message: BytesMut,
}

impl Incoming {
    fn into_stream(self) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut state = state?;
            let item = state.next().await?;
            let go_on = item.is_ok();
            Some((item, go_on.then_some(state)))
        })
    }

    /// The next bytes for the hub; `None` once the client closed (its Close frame). A
    /// socket that ends without one is an error: the transport was lost.
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            let Some(event) = self.reader.next().await else {
                return Some(Err(lost_without_close()));
            };
            match event {
                Ok(Event::Data { payload, last, .. }) => match self.whole {
                    None if payload.is_empty() => {}
                    None => return Some(Ok(payload)),
                    Some(max) => {
                        if self.message.len() + payload.len() > max {
                            self.close_code.store(TOO_BIG, Ordering::Relaxed);
                            return Some(Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!("a WebSocket message over {max} bytes"),
                            )));
                        }
                        self.message.extend_from_slice(&payload);
                        if last {
                            return Some(Ok(self.message.split().freeze()));
                        }
                    }
                },
                Ok(Event::Ping(payload)) => self.pongs.ask(payload),
                Ok(Event::Pong) => {}
                Ok(Event::Close(_)) => return None,
                Err(error) => {
                    tracing::debug!(%error, "websocket read failed");
                    if let Some(code) = violation_code(&error) {
                        self.close_code.store(code, Ordering::Relaxed);
                    }
                    return Some(Err(error));
                }
            }
        }
    }
}

/// A socket that ended without the closing handshake.
pub(crate) fn lost_without_close() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the WebSocket ended without a closing handshake",
    )
}

/// The write side: the connection's frames, in batches, then the close.
struct Writer {
    socket: SocketWriter,
    outgoing: hubs_core::Outgoing,
    closed: tokio_util::sync::CancellationToken,
    close_handle: hubs_core::CloseHandle,
    pongs: Arc<Pongs>,
    close_code: Arc<AtomicU16>,
}

impl Writer {
    async fn run(mut self) {
        let mut closing = false;
        // One waiter for the whole connection (registering one per frame is costly).
        let closed = self.closed.clone();
        let on_closed = closed.cancelled();
        tokio::pin!(on_closed);
        loop {
            let first = tokio::select! {
                biased;
                frame = self.outgoing.recv() => {
                    // Closed: the connection's task is gone (it returned, or it was
                    // dropped with its runtime): nothing more will come.
                    closing |= frame.is_none();
                    frame
                }
                () = self.pongs.due.notified() => None,
                () = &mut on_closed, if !closing => {
                    closing = true;
                    self.outgoing.try_recv().ok()
                }
            };
            if let Some(pong) = self.pongs.take() {
                self.socket.feed_pong(&pong);
            }
            match first {
                Some(first) => {
                    // Woken for a lone frame: let whatever is producing (a broadcast, a
                    // stream) queue more before paying for the write, so one write
                    // carries several.
                    if self.outgoing.is_empty() && !closing {
                        tokio::task::yield_now().await;
                    }
                    self.socket.feed(&first);
                    while self.socket.buffered() < BATCH_BYTES {
                        match self.outgoing.try_recv() {
                            Ok(frame) => self.socket.feed(&frame),
                            Err(_) => break,
                        }
                    }
                }
                None if self.socket.buffered() > 0 => {}
                None if closing || self.closed.is_cancelled() => break,
                None => continue,
            }
            if let Err(error) = self.socket.flush().await {
                tracing::debug!(%error, "websocket write failed");
                self.close_handle
                    .transport_lost(if error.kind() == std::io::ErrorKind::TimedOut {
                        "The WebSocket write timed out.".to_owned()
                    } else {
                        format!("The WebSocket write failed: {error}")
                    });
                return;
            }
            if closing && self.outgoing.is_empty() {
                break;
            }
        }
        self.socket
            .close(self.close_code.load(Ordering::Relaxed))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use hubs_core::{CloseHandle, Frame, HubOptions};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A socket that reads nothing and records the size of every write.
    struct Recording(Arc<Mutex<Vec<usize>>>);

    impl tokio::io::AsyncRead for Recording {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    impl tokio::io::AsyncWrite for Recording {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A hub that queues `frames` at once and is done.
    struct Burst {
        options: HubOptions,
        frames: Vec<Frame>,
    }

    impl HubEndpoint for Burst {
        fn options(&self) -> &HubOptions {
            &self.options
        }

        fn connect(self: Arc<Self>, connection: TransportConnection) -> Connected {
            let (tx, rx) = hubs_core::OutboundQueue::new(Default::default());
            for frame in &self.frames {
                tx.push(frame.clone());
            }
            let closed = CancellationToken::new();
            closed.cancel();
            Connected {
                outgoing: rx,
                closed,
                close_handle: CloseHandle::new(),
                task: Box::pin(async move { drop((connection, tx)) }),
            }
        }

        fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }

        fn shutdown(&self) {}
    }

    #[tokio::test]
    async fn frames_queued_together_go_out_in_one_write() {
        let frames: Vec<Frame> = (0..10)
            .map(|n| Frame {
                bytes: Bytes::from(format!("{{\"type\":6,\"n\":{n}}}\u{1e}")),
                binary: false,
                sequenced: true,
            })
            .collect();
        // A server's frame: a 2-byte header (short, unmasked), then the payload.
        let burst: usize = frames.iter().map(|f| 2 + f.bytes.len()).sum();
        let writes = Arc::new(Mutex::new(Vec::new()));
        let socket = Socket::new(
            Recording(writes.clone()),
            std::time::Duration::from_secs(10),
        );
        let endpoint = Arc::new(Burst {
            options: HubOptions::default(),
            frames,
        });
        let request = hubs_core::Request::new(http::Uri::from_static("/hub"), Default::default());
        run(
            socket,
            endpoint,
            ConnectionId::generate(),
            request,
            Vec::new(),
        )
        .await;
        let writes = writes.lock().unwrap().clone();
        // The burst, then the Close frame: not a write per frame.
        assert_eq!(writes.first(), Some(&burst), "writes: {writes:?}");
        assert_eq!(writes.len(), 2, "writes: {writes:?}");
    }
}
