//! The two HTTP transports: Server-Sent Events and long polling. Both carry the client's
//! messages in POST bodies; they differ in how the server's messages go out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use hubs_core::{
    Capabilities, CloseHandle, Connected, ConnectionId, Frame, HubEndpoint, Outgoing,
    TransportConnection, TransportKind, wire,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body};
use crate::options::DISCONNECT_TIMEOUT;

/// How long a closed long-polling connection waits for a poll to take what it queued
/// last.
const LAST_POLL: Duration = Duration::from_secs(5);

/// The most bytes one poll response carries (more waits for the next poll).
const POLL_BATCH: usize = 1 << 20;

/// The link between the HTTP requests of one SSE or long-polling connection and the
/// connection's task: the queues both ways, the current poll, and who may use it.
#[derive(Debug)]
pub(crate) struct HttpLink {
    transport: TransportKind,
    /// Where POST bodies go; taken by a long-polling `DELETE`, which closes the client's
    /// side cleanly.
    incoming: Mutex<Option<mpsc::Sender<Bytes>>>,
    outgoing: tokio::sync::Mutex<Outgoing>,
    closed: CancellationToken,
    close_handle: CloseHandle,
    polls: Mutex<Polls>,
    posts: tokio::sync::Mutex<()>,
    /// The largest POST body, for an endpoint that reads whole messages; `None` streams
    /// every body through in pieces.
    max_post: Option<usize>,
    /// The authenticated user's id: later requests must carry the same user.
    user_id: Option<String>,
}

#[derive(Debug)]
struct Polls {
    current: Option<CancellationToken>,
    last_end: Instant,
}

impl HttpLink {
    /// The authenticated user's id, if the connection has one.
    pub(crate) fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// Starts the hub connection behind an SSE stream or a long-polling session, with
    /// `early`, what the client POSTed before. `on_close` runs once the connection's task
    /// is over.
    pub(crate) fn start(
        endpoint: Arc<dyn HubEndpoint>,
        connection_id: ConnectionId,
        request: hubs_core::Request,
        transport: TransportKind,
        early: Vec<Bytes>,
        on_close: impl FnOnce() + Send + 'static,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let incoming = futures_util::stream::iter(early.into_iter().map(Ok)).chain(
            futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok(b), rx))
            }),
        );
        // A raw connection handler reads each POST whole; a hub reads the bytes as they
        // come, however large the body (the official clients coalesce queued sends into
        // one POST), and applies its limit per hub message.
        let max_post = endpoint
            .whole_messages()
            .then(|| max_post(endpoint.options()));
        let long_polling = transport == TransportKind::LongPolling;
        let user_id = request
            .user()
            .and_then(hubs_core::User::id)
            .map(str::to_owned);
        let Connected {
            outgoing,
            closed,
            close_handle,
            task,
        } = endpoint.connect(TransportConnection {
            connection_id,
            request,
            transport,
            // Server-Sent Events carry text only; long polling keeps itself alive.
            capabilities: Capabilities::new(transport.supports_binary(), !long_polling),
            incoming: Box::pin(incoming),
        });
        let link = Arc::new(Self {
            transport,
            incoming: Mutex::new(Some(tx)),
            outgoing: tokio::sync::Mutex::new(outgoing),
            closed,
            close_handle,
            polls: Mutex::new(Polls {
                current: None,
                last_end: Instant::now(),
            }),
            posts: tokio::sync::Mutex::new(()),
            max_post,
            user_id,
        });
        let drained = Arc::downgrade(&link);
        tokio::spawn(async move {
            task.await;
            if long_polling {
                // What the hub queued last (its Close) goes out with the next poll, as
                // long as the client still polls.
                drain_by_polls(drained).await;
            }
            on_close();
        });
        if long_polling {
            tokio::spawn(reap_when_not_polled(Arc::downgrade(&link)));
        }
        link
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.transport
    }

    fn polls(&self) -> std::sync::MutexGuard<'_, Polls> {
        lock(&self.polls)
    }

    /// `POST`: the body is one or more of the client's messages.
    pub(crate) async fn post<B>(&self, body: B) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // One POST at a time per connection, in order.
        let _turn = self.posts.lock().await;
        let incoming = lock(&self.incoming).clone();
        let Some(incoming) = incoming.filter(|_| !self.close_handle.is_closed()) else {
            return body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID);
        };
        let delivered = match self.max_post {
            Some(max) => {
                let bytes = match read_body(body, max).await {
                    Ok(bytes) => bytes,
                    Err(refused) => return refused,
                };
                self.forward(&incoming, bytes).await
            }
            None => {
                // Piece by piece as the body arrives, each waiting for the hub to take it.
                let mut body = std::pin::pin!(body);
                loop {
                    // The body's error is not `Send`: it is not held across a wait.
                    let data = match body.as_mut().frame().await {
                        None => break true,
                        Some(Ok(frame)) => frame.into_data().ok(),
                        Some(Err(_)) => return body::text(StatusCode::BAD_REQUEST, ""),
                    };
                    if let Some(mut data) = data.filter(Buf::has_remaining) {
                        let bytes = data.copy_to_bytes(data.remaining());
                        if !self.forward(&incoming, bytes).await {
                            break false;
                        }
                    }
                }
            }
        };
        if !delivered {
            return body::text(StatusCode::NOT_FOUND, wire::NO_CONNECTION_WITH_ID);
        }
        body::empty_ok()
    }

    /// Hands bytes of a POST to the hub; `false` once the connection has closed.
    async fn forward(&self, incoming: &mpsc::Sender<Bytes>, bytes: Bytes) -> bool {
        tokio::select! {
            sent = incoming.send(bytes) => sent.is_ok(),
            () = self.close_handle.closed() => false,
        }
    }

    /// `DELETE` on a long-polling connection: the client's side closes cleanly; the pending
    /// poll gets 204.
    pub(crate) fn delete(&self) -> Response<Body> {
        if let Some(poll) = self.polls().current.take() {
            poll.cancel();
        }
        lock(&self.incoming).take();
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::ACCEPTED;
        response
    }

    /// A long poll: returns queued messages at once, or waits for some (up to
    /// `timeout`). A newer poll supersedes this one (204); so does the connection's close
    /// once its last messages are out.
    pub(crate) async fn poll(&self, timeout: Duration) -> Response<Body> {
        let token = CancellationToken::new();
        if let Some(previous) = self.polls().current.replace(token.clone()) {
            previous.cancel();
        }
        let result = tokio::select! {
            biased;
            () = token.cancelled() => None,
            mut outgoing = self.outgoing.lock() => {
                tokio::select! {
                    biased;
                    () = token.cancelled() => None,
                    frame = outgoing.recv() => frame.map(|first| batch(first, &mut outgoing)),
                    () = self.closed.cancelled() => outgoing.try_recv().ok().map(|first| batch(first, &mut outgoing)),
                    () = tokio::time::sleep(timeout) => Some(Bytes::new()),
                }
            }
        };
        {
            let mut polls = self.polls();
            polls.last_end = Instant::now();
            if polls
                .current
                .as_ref()
                .is_some_and(|current| current == &token)
            {
                polls.current = None;
            }
        }
        match result {
            Some(bytes) => poll_response(StatusCode::OK, bytes),
            None => poll_response(StatusCode::NO_CONTENT, Bytes::new()),
        }
    }

    /// The SSE response: a `:` comment, then one event per frame, until the connection
    /// closes. Dropping the response (the client went away) closes the connection.
    pub(crate) fn event_stream(self: Arc<Self>) -> Response<Body> {
        /// The client closed the event stream (or it failed): the transport is gone.
        struct LostOnDrop(CloseHandle);
        impl Drop for LostOnDrop {
            fn drop(&mut self) {
                if !self.0.is_closed() {
                    self.0
                        .transport_lost("The event stream was closed by the client.");
                }
            }
        }
        let guard = LostOnDrop(self.close_handle.clone());
        let first = futures_util::stream::once(async {
            Ok(hyper::body::Frame::data(Bytes::from_static(b":\r\n")))
        });
        let events = futures_util::stream::unfold((self, guard), |(link, guard)| async move {
            let frame = {
                let mut outgoing = link.outgoing.lock().await;
                tokio::select! {
                    biased;
                    frame = outgoing.recv() => frame,
                    () = link.closed.cancelled() => outgoing.try_recv().ok(),
                }
            }?;
            Some((
                Ok(hyper::body::Frame::data(sse_event(&frame.bytes))),
                (link, guard),
            ))
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(first.chain(events))));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache,no-store"),
        );
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        response
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The largest POST body a connection takes: a body may carry several messages, so the
/// limit is looser than the hub's; the hub protocol enforces the real one.
pub(crate) fn max_post(options: &hubs_core::HubOptions) -> usize {
    options
        .max_message_size_limit()
        .map_or(usize::MAX, |max| max.saturating_mul(4).max(1 << 20))
}

/// `413` for a body over the limit.
pub(crate) fn payload_too_large() -> Response<Body> {
    body::text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")
}

/// A request body, up to `max` bytes.
pub(crate) async fn read_body<B>(body: B, max: usize) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(payload_too_large()),
        Err(_) => Err(body::text(StatusCode::BAD_REQUEST, "")),
    }
}

/// The first frame and whatever else is queued, up to [`POLL_BATCH`] bytes.
fn batch(first: Frame, outgoing: &mut Outgoing) -> Bytes {
    if outgoing.is_empty() {
        return first.bytes;
    }
    let mut out = BytesMut::from(&first.bytes[..]);
    while out.len() < POLL_BATCH {
        match outgoing.try_recv() {
            Ok(frame) => out.extend_from_slice(&frame.bytes),
            Err(_) => break,
        }
    }
    out.freeze()
}

fn poll_response(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if status == StatusCode::OK {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    response
}

/// The first long poll activates the connection and returns at once.
pub(crate) fn first_poll() -> Response<Body> {
    poll_response(StatusCode::OK, Bytes::new())
}

/// `data: ` + each line + CRLF, then an empty line.
fn sse_event(bytes: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(bytes.len() + 16);
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// Waits until a poll has taken everything a closed long-polling connection queued, for
/// [`LAST_POLL`] at most.
async fn drain_by_polls(link: std::sync::Weak<HttpLink>) {
    let until = Instant::now() + LAST_POLL;
    while Instant::now() < until {
        let Some(link) = link.upgrade() else {
            return;
        };
        if link
            .outgoing
            .try_lock()
            .is_ok_and(|outgoing| outgoing.is_empty())
        {
            return;
        }
        drop(link);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Closes a long-polling connection that nobody polls for [`DISCONNECT_TIMEOUT`].
async fn reap_when_not_polled(link: std::sync::Weak<HttpLink>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(link) = link.upgrade() else {
            return;
        };
        if link.close_handle.is_closed() {
            return;
        }
        let idle = {
            let polls = link.polls();
            polls.current.is_none() && polls.last_end.elapsed() >= DISCONNECT_TIMEOUT
        };
        if idle {
            tracing::debug!("long-polling connection not polled in time; closing it");
            link.close_handle.transport_lost(format!(
                "The client did not poll for {} s.",
                DISCONNECT_TIMEOUT.as_secs()
            ));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sse_event;

    #[test]
    fn events_split_lines() {
        assert_eq!(
            &sse_event(b"{\"type\":6}\x1e")[..],
            b"data: {\"type\":6}\x1e\r\n\r\n"
        );
        assert_eq!(
            &sse_event(b"a\r\nb\nc")[..],
            b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"
        );
    }
}
