//! The WebSockets transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hubs_core::{
    Capabilities, Connected, ConnectionId, Frame, HubEndpoint, TransportConnection, TransportKind,
};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::body::{self, Body};

/// Frames written per flush at most.
const BATCH: usize = 64;

/// Bytes the socket's write buffer gathers before it writes: the frames of one batch go
/// out in one `send(2)` (flushed at the end of the batch), and a connection keeps at
/// most this much (plus one frame) of buffer after a burst. tungstenite writes every
/// frame on its own when this is 0.
const WRITE_BUFFER: usize = 8 * 1024;

/// An upgraded WebSocket, server side.
pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

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
    // A WebSocket message may carry several hub messages, so the socket's own limit is
    // looser than the hub's; the hub protocol enforces the real one, with the official
    // close text.
    let max_message = options
        .max_message_size_limit()
        .map(|max| max.saturating_mul(4).max(1 << 20));
    let socket = async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "websocket upgrade failed");
                return None;
            }
        };
        let config = socket_config(max_message);
        Some(
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await,
        )
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

/// The server socket's settings: a small read buffer (tungstenite's default is 128 KiB,
/// zero-filled, per connection), a write buffer so a batch goes out in one write, and
/// the message limit.
fn socket_config(max_message: Option<usize>) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4 * 1024;
    config.write_buffer_size = WRITE_BUFFER;
    config.max_message_size = max_message;
    config.max_frame_size = max_message;
    config
}

/// Answers a WebSocket upgrade and runs the connection on the upgraded socket.
pub(crate) fn upgrade<B: Send + 'static>(
    request: &mut Request<B>,
    endpoint: Arc<dyn HubEndpoint>,
    (connection_id, user): (ConnectionId, Option<Arc<hubs_core::User>>),
    early: Vec<Bytes>,
    on_end: impl FnOnce() + Send + 'static,
) -> Response<Body> {
    let (response, socket) = match accept(request, endpoint.options()) {
        Ok(accepted) => accepted,
        Err(refused) => {
            on_end();
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
        on_end();
    });
    response
}

/// Starts the connection on `socket` and spawns its writer; the future it returns holds
/// only the connection's task and the writer's handle.
fn run<S>(
    socket: WebSocketStream<S>,
    endpoint: Arc<dyn HubEndpoint>,
    connection_id: ConnectionId,
    request: hubs_core::Request,
    early: Vec<Bytes>,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let send_timeout = endpoint.options().configured_send_timeout();
    let (mut sink, stream) = socket.split();
    // A close frame ends the stream cleanly; a read error (a reset without the closing
    // handshake) ends it with that error. A frame that breaks the WebSocket rules ends it
    // with an `InvalidData` error (the hub answers with a Close message) and picks the
    // close code the writer sends.
    let close_code = Arc::new(AtomicU16::new(u16::from(CloseCode::Normal)));
    let violation = close_code.clone();
    let incoming = futures_util::stream::unfold(Some(stream), move |stream| {
        let violation = violation.clone();
        async move {
            let mut stream = stream?;
            loop {
                match stream.next().await? {
                    Ok(Message::Text(text)) => return Some((Ok(Bytes::from(text)), Some(stream))),
                    Ok(Message::Binary(bytes)) => return Some((Ok(bytes), Some(stream))),
                    Ok(Message::Close(_)) => return None,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(%error, "websocket read failed");
                        let error = match violation_code(&error) {
                            Some(code) => {
                                violation.store(u16::from(code), Ordering::Relaxed);
                                std::io::Error::new(std::io::ErrorKind::InvalidData, error)
                            }
                            None => std::io::Error::other(error),
                        };
                        return Some((Err(error), None));
                    }
                }
            }
        }
    });
    let Connected {
        mut outgoing,
        finished,
        end,
        task,
    } = endpoint.connect(TransportConnection {
        connection_id,
        request,
        transport: TransportKind::WebSockets,
        capabilities: Capabilities::new(true, true),
        incoming: Box::pin(futures_util::stream::iter(early.into_iter().map(Ok)).chain(incoming)),
    });

    let writer = async move {
        let mut finishing = false;
        // One waiter for the whole connection (registering one per frame is costly).
        let ended = finished.cancelled();
        tokio::pin!(ended);
        loop {
            let first = tokio::select! {
                biased;
                frame = outgoing.recv() => frame,
                () = &mut ended, if !finishing => {
                    finishing = true;
                    outgoing.try_recv().ok()
                }
            };
            let Some(first) = first else {
                if finishing || finished.is_cancelled() {
                    break;
                }
                continue;
            };
            // Woken for a lone frame: let whatever is producing (a broadcast, a stream)
            // queue more before paying for the write, so one write carries several.
            if outgoing.is_empty() && !finishing {
                tokio::task::yield_now().await;
            }
            let written = {
                let queue = &mut outgoing;
                let sink = &mut sink;
                let write = async move {
                    sink.feed(message(first)).await?;
                    for _ in 1..BATCH {
                        match queue.try_recv() {
                            Ok(frame) => sink.feed(message(frame)).await?,
                            Err(_) => break,
                        }
                    }
                    sink.flush().await
                };
                // Writes almost always complete at once; a timer is armed only for one
                // that does not (one per message per connection would dominate a
                // broadcast).
                let mut write = std::pin::pin!(write);
                match futures_util::poll!(&mut write) {
                    std::task::Poll::Ready(result) => Ok(result),
                    std::task::Poll::Pending => tokio::time::timeout(send_timeout, write).await,
                }
            };
            match written {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "websocket write failed");
                    end.transport_lost(format!("The WebSocket write failed: {error}"));
                    return;
                }
                Err(_) => {
                    tracing::debug!("websocket write timed out");
                    end.transport_lost("The WebSocket write timed out.");
                    return;
                }
            }
            if finishing && outgoing.is_empty() {
                break;
            }
        }
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::from(close_code.load(Ordering::Relaxed)),
            reason: "".into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = sink.send(close).await;
            let _ = sink.close().await;
        })
        .await;
    };
    // The writer is a task of its own: a frame queued for this connection wakes only it,
    // not the connection's read loop.
    let writer = tokio::spawn(writer);
    async move {
        task.await;
        let _ = writer.await;
    }
}

/// The close code for a frame that breaks the WebSocket rules: 1007 for text that is not
/// UTF-8, 1009 for a message over the limit, 1002 for other protocol errors. `None` for
/// a transport that just failed.
pub(crate) fn violation_code(error: &WsError) -> Option<CloseCode> {
    match error {
        WsError::Utf8(_) => Some(CloseCode::Invalid),
        WsError::Capacity(_) => Some(CloseCode::Size),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(CloseCode::Protocol),
        _ => None,
    }
}

pub(crate) fn message(frame: Frame) -> Message {
    if frame.binary {
        Message::Binary(frame.bytes)
    } else {
        match Utf8Bytes::try_from(frame.bytes.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(frame.bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use hubs_core::{EndHandle, HubOptions};
    use tokio::sync::mpsc;
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
            let (tx, rx) = mpsc::channel(self.frames.len());
            for frame in &self.frames {
                tx.try_send(frame.clone()).expect("room");
            }
            let finished = CancellationToken::new();
            finished.cancel();
            Connected {
                outgoing: rx,
                finished,
                end: EndHandle::new(),
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
        let socket = WebSocketStream::from_raw_socket(
            Recording(writes.clone()),
            Role::Server,
            Some(socket_config(None)),
        )
        .await;
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
