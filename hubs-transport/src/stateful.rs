//! Stateful reconnect on the server (protocol.md §11): a connection that outlives its
//! WebSocket.
//!
//! A relay task stands between the hub connection and whichever socket the client has at
//! the moment. It numbers what the hub sends and keeps it until the client acknowledges
//! it ([`ReplayBuffer`]), numbers what the client sends and drops what a replay repeats
//! ([`ReceivedSequence`]), and acknowledges once a second. When the socket fails without a
//! closing handshake the hub connection does not notice: the relay keeps taking its
//! messages (up to the buffer's limit, then the hub's own queue and slow-consumer policy
//! take over) and waits (15 s by default) for the client to open a new socket with the
//! same token. Then it announces its `Sequence`, replays what was not acknowledged, and the
//! connection goes on with its id, groups, items, client results and streams. A client that
//! does not come back in time loses the connection as if the socket had just failed.
//!
//! The relay only counts once the handshake asked for protocol version 2; before that, and
//! for a client that asked for version 1, it passes everything through, and a failed socket
//! closes the connection as on any WebSocket.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hubs_core::protocol::{
    Ack, Framed, HandshakeRequest, HubMessage, MessageDecoder, Protocol, ReceivedSequence,
    ReplayBuffer, Sequence,
};
use hubs_core::{
    BoxFuture, Capabilities, CloseHandle, Connected, ConnectionId, Frame, HubEndpoint,
    TransportConnection, TransportKind,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::websocket::{Event as WsEvent, Socket, violation_code};

/// The normal WebSocket close code.
const NORMAL: u16 = 1000;

/// How often the relay acknowledges what it received (as the official server).
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// Where a client's new socket goes when it comes back.
#[derive(Debug)]
pub(crate) struct Resume {
    sockets: mpsc::UnboundedSender<Socket>,
    /// The authenticated user's id: a new socket must carry the same user.
    user_id: Option<String>,
}

impl Resume {
    /// Hands a new socket to the relay; `false` when the connection has closed.
    pub(crate) fn attach(&self, socket: Socket) -> bool {
        self.sockets.send(socket).is_ok()
    }

    /// The connection's user id.
    pub(crate) fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

/// Runs a connection on its first socket (with what the client POSTed before it).
type Start = Box<dyn FnOnce(Socket, Vec<Bytes>) -> BoxFuture<()> + Send>;

/// Starts a connection that may resume: what to register for the client's return, and
/// what runs the connection once the upgrade has given its first socket.
pub(crate) fn start(
    endpoint: Arc<dyn HubEndpoint>,
    connection_id: ConnectionId,
    request: hubs_core::Request,
) -> (Arc<Resume>, Start) {
    let (sockets_tx, sockets) = mpsc::unbounded_channel();
    let resume = Arc::new(Resume {
        sockets: sockets_tx,
        user_id: request
            .user()
            .and_then(hubs_core::User::id)
            .map(str::to_owned),
    });
    let run: Start = Box::new(move |socket, early| {
        Box::pin(run(
            endpoint,
            connection_id,
            request,
            early,
            socket,
            sockets,
        ))
    });
    (resume, run)
}

async fn run(
    endpoint: Arc<dyn HubEndpoint>,
    connection_id: ConnectionId,
    request: hubs_core::Request,
    early: Vec<Bytes>,
    socket: Socket,
    sockets: mpsc::UnboundedReceiver<Socket>,
) {
    let options = endpoint.options();
    let limit = options.stateful_reconnect().unwrap_or(100_000);
    let max_message = options.max_message_size_limit();
    let window = options.configured_stateful_reconnect_window();
    let (to_hub, mut from_relay) = mpsc::channel::<std::io::Result<Bytes>>(16);
    let incoming = futures_util::stream::poll_fn(move |cx| from_relay.poll_recv(cx));
    let Connected {
        outgoing,
        closed,
        close_handle,
        task,
    } = endpoint.clone().connect(TransportConnection {
        connection_id,
        request,
        transport: TransportKind::WebSockets,
        capabilities: Capabilities::new(true, true),
        incoming: Box::pin(futures_util::stream::iter(early.into_iter().map(Ok)).chain(incoming)),
    });
    let relay = Relay {
        socket: Some(socket),
        sockets,
        outgoing,
        to_hub: Some(to_hub),
        close_handle,
        handshake: Some(BytesMut::new()),
        decoder: None,
        replay: ReplayBuffer::new(limit),
        received: ReceivedSequence::default(),
        max_message,
        window,
        detached_since: None,
        client_closed: false,
        close_code: NORMAL,
    };
    let relay = tokio::spawn(relay.run(closed));
    task.await;
    let _ = relay.await;
}

struct Relay {
    /// The client's socket, while it has one.
    socket: Option<Socket>,
    /// New sockets of the same connection.
    sockets: mpsc::UnboundedReceiver<Socket>,
    /// What the hub sends.
    outgoing: hubs_core::Outgoing,
    /// What the client sends, to the hub; `None` once the client closed cleanly.
    to_hub: Option<mpsc::Sender<std::io::Result<Bytes>>>,
    close_handle: CloseHandle,
    /// The handshake request while it is incomplete; `None` once it was read.
    handshake: Option<BytesMut>,
    /// Counting is on (the handshake asked for version 2): the client's protocol.
    decoder: Option<MessageDecoder>,
    replay: ReplayBuffer,
    received: ReceivedSequence,
    max_message: Option<usize>,
    /// How long the client may be away.
    window: Duration,
    /// When the socket was lost, while the client has none.
    detached_since: Option<Instant>,
    /// The client sent its Close: the socket is only written to from then on.
    client_closed: bool,
    /// The code of the Close frame the relay closes the socket with.
    close_code: u16,
}

/// What the relay's loop waits for.
enum Event {
    Socket(Option<Box<Socket>>),
    Frame(Option<Frame>),
    Read(Option<std::io::Result<WsEvent>>),
    AckDue,
    Abandoned,
    /// The hub connection closed.
    Closed,
}

impl Relay {
    fn counting(&self) -> bool {
        self.decoder.is_some()
    }

    async fn run(mut self, closed: tokio_util::sync::CancellationToken) {
        let mut acks = tokio::time::interval(ACK_INTERVAL);
        acks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let on_closed = closed.cancelled();
        tokio::pin!(on_closed);
        loop {
            // While the replay buffer is full, the hub's messages wait in its own queue.
            let take_frames = !(self.counting() && self.replay.is_full());
            let abandon_at = self
                .detached_since
                .map(|since| since + self.window)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let event = tokio::select! {
                biased;
                socket = self.sockets.recv() => Event::Socket(socket.map(Box::new)),
                frame = self.outgoing.recv(), if take_frames => Event::Frame(frame),
                read = next_read(&mut self.socket, self.client_closed) => Event::Read(read),
                _ = acks.tick(), if self.counting() && self.socket.is_some() => Event::AckDue,
                () = tokio::time::sleep_until(abandon_at), if self.detached_since.is_some() => Event::Abandoned,
                () = &mut on_closed => Event::Closed,
            };
            match event {
                Event::Socket(Some(socket)) => self.resumed(*socket).await,
                Event::Socket(None) => {}
                Event::Frame(Some(frame)) => self.send(frame).await,
                Event::Frame(None) | Event::Closed => break,
                Event::Read(read) => self.received_from_client(read).await,
                Event::AckDue => {
                    if let Some(id) = self.received.ack_due() {
                        self.write_control(&HubMessage::Ack(Ack { sequence_id: id }))
                            .await;
                    }
                }
                Event::Abandoned => {
                    tracing::debug!("the client did not come back; the connection closes");
                    self.close_handle.transport_lost(
                        "The WebSocket was lost and the client did not reconnect in time.",
                    );
                    self.detached_since = None;
                    // Too late: a socket that comes now is turned away.
                    self.to_hub = None;
                }
            }
        }
        // The hub queued its last frame: write what is left, then close the socket.
        while let Ok(frame) = self.outgoing.try_recv() {
            self.send(frame).await;
        }
        if let Some(mut socket) = self.socket.take() {
            socket.writer.close(self.close_code).await;
        }
    }

    /// A frame from the hub: numbered and kept when counting, written when a socket is
    /// there.
    async fn send(&mut self, frame: Frame) {
        if self.counting() && frame.sequenced {
            self.replay.push(frame.bytes.clone());
        } else if self.socket.is_none() {
            // A Ping or a Close for a client that is away: nothing to keep.
            return;
        }
        self.write(&[frame]).await;
    }

    /// Writes to the socket, if there is one; a failure detaches it.
    async fn write(&mut self, frames: &[Frame]) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        for frame in frames {
            socket.writer.feed(frame);
        }
        match socket.writer.flush().await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                self.lost("The WebSocket write timed out.".to_owned());
            }
            Err(error) => self.lost(format!("The WebSocket write failed: {error}")),
        }
    }

    async fn write_control(&mut self, control: &HubMessage) {
        let Some(protocol) = self.decoder.as_ref().map(MessageDecoder::protocol) else {
            return;
        };
        let mut bytes = Vec::new();
        if protocol.encode(control, &mut bytes).is_ok() {
            self.write(&[Frame {
                bytes: bytes.into(),
                binary: protocol == Protocol::MessagePack,
                sequenced: false,
            }])
            .await;
        }
    }

    /// The socket failed: wait for the client when counting, else the connection closes.
    fn lost(&mut self, reason: String) {
        self.socket = None;
        if self.counting() && self.to_hub.is_some() {
            tracing::debug!(%reason, "websocket lost; waiting for the client to reconnect");
            self.detached_since = Some(Instant::now());
        } else {
            self.close_handle.transport_lost(reason);
        }
    }

    /// The client came back: announce the sequence and replay what it has not
    /// acknowledged.
    async fn resumed(&mut self, socket: Socket) {
        if !self.counting() || self.to_hub.is_none() {
            // Nothing to resume (not stateful, or the client closed): turn it away.
            let mut socket = socket;
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.writer.close(NORMAL)).await;
            return;
        }
        // A socket that had not failed yet (the server had not noticed) gives way.
        if let Some(mut old) = self.socket.replace(socket) {
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), old.writer.close(NORMAL)).await;
            });
        }
        self.detached_since = None;
        self.client_closed = false;
        // The client announces its own sequence first; ours resets its expectations.
        let Some(protocol) = self.decoder.as_ref().map(MessageDecoder::protocol) else {
            return;
        };
        self.decoder = Some(protocol.decoder().with_max_message_size(self.max_message));
        let mut sequence = Vec::new();
        let announced = HubMessage::Sequence(Sequence {
            sequence_id: self.replay.sequence_id(),
        });
        if protocol.encode(&announced, &mut sequence).is_err() {
            return;
        }
        let binary = protocol == Protocol::MessagePack;
        let mut messages = vec![Frame {
            bytes: sequence.into(),
            binary,
            sequenced: false,
        }];
        messages.extend(self.replay.unacknowledged().map(|bytes| Frame {
            bytes: bytes.clone(),
            binary,
            sequenced: true,
        }));
        tracing::debug!(
            replayed = messages.len() - 1,
            "client resumed its connection"
        );
        self.write(&messages).await;
    }

    async fn received_from_client(&mut self, read: Option<std::io::Result<WsEvent>>) {
        let bytes = match read {
            Some(Ok(WsEvent::Data { payload, .. })) if !payload.is_empty() => payload,
            Some(Ok(WsEvent::Ping(payload))) => {
                if let Some(socket) = self.socket.as_mut() {
                    socket.writer.feed_pong(&payload);
                }
                self.write(&[]).await;
                return;
            }
            Some(Ok(WsEvent::Data { .. } | WsEvent::Pong)) => return,
            // A closing handshake: the client is done for good.
            Some(Ok(WsEvent::Close(_))) => {
                self.client_closed = true;
                self.to_hub = None;
                return;
            }
            // The socket ended without the closing handshake: lost, as a failed read.
            None => {
                return self
                    .read_failed(crate::websocket::lost_without_close())
                    .await;
            }
            Some(Err(error)) => {
                if let Some(code) = violation_code(&error) {
                    // Broken WebSocket rules close the connection, as on any socket.
                    tracing::debug!(%error, code, "websocket protocol violation");
                    self.close_code = code;
                    self.client_closed = true;
                    self.forward(Err(error)).await;
                    self.to_hub = None;
                    return;
                }
                return self.read_failed(error).await;
            }
        };
        if let Some(mut pending) = self.handshake.take() {
            pending.extend_from_slice(&bytes);
            let all = pending.clone().freeze();
            match HandshakeRequest::decode(&mut pending, self.max_message) {
                Ok(None) => {
                    self.handshake = Some(pending);
                    return;
                }
                Ok(Some(request)) => {
                    let consumed = all.len() - pending.len();
                    self.forward(Ok(all.slice(..consumed))).await;
                    if request.version >= 2
                        && let Some(protocol) = Protocol::from_name(&request.protocol)
                    {
                        self.decoder =
                            Some(protocol.decoder().with_max_message_size(self.max_message));
                    }
                    if pending.is_empty() {
                        return;
                    }
                    self.relay_to_hub(pending.freeze()).await;
                }
                // The hub answers a bad handshake itself.
                Err(_) => self.forward(Ok(all)).await,
            }
            return;
        }
        self.relay_to_hub(bytes).await;
    }

    /// The socket failed on reading: when counting, the client may come back; else the
    /// connection closes.
    async fn read_failed(&mut self, error: std::io::Error) {
        self.lost(format!("The WebSocket read failed: {error}"));
        if !self.counting() {
            self.forward(Err(std::io::Error::other("the WebSocket read failed")))
                .await;
            self.to_hub = None;
        }
    }

    /// Bytes from the client after the handshake.
    async fn relay_to_hub(&mut self, bytes: Bytes) {
        let Some(decoder) = self.decoder.as_mut() else {
            self.forward(Ok(bytes)).await;
            return;
        };
        decoder.push(&bytes);
        let mut out = BytesMut::new();
        let mut failed = false;
        loop {
            match decoder.next_framed() {
                Ok(Some(Framed {
                    message: Ok(HubMessage::Ack(ack)),
                    ..
                })) => self.replay.ack(ack.sequence_id),
                Ok(Some(Framed {
                    message: Ok(HubMessage::Sequence(sequence)),
                    ..
                })) => {
                    if let Err(error) = self.received.sequence(sequence.sequence_id) {
                        self.close_handle.transport_lost(error);
                        failed = true;
                        break;
                    }
                }
                Ok(Some(Framed {
                    bytes,
                    message: Ok(message),
                })) => {
                    if !message.is_sequenced() || self.received.accept() {
                        out.extend_from_slice(&bytes);
                    }
                }
                // The hub reports a message it cannot read.
                Ok(Some(Framed { bytes, .. })) => out.extend_from_slice(&bytes),
                Ok(None) => break,
                Err(_) => {
                    // The stream cannot be split any more: the hub's decoder fails the
                    // same way and closes the connection with the official text.
                    out.extend_from_slice(&bytes);
                    self.decoder = None;
                    break;
                }
            }
        }
        if !out.is_empty() {
            self.forward(Ok(out.freeze())).await;
        }
        if failed {
            self.to_hub = None;
        }
    }

    async fn forward(&mut self, bytes: std::io::Result<Bytes>) {
        if let Some(to_hub) = &self.to_hub
            && to_hub.send(bytes).await.is_err()
        {
            self.to_hub = None;
        }
    }
}

/// The next event from the socket, or never when there is none (or the client has
/// closed its side).
async fn next_read(socket: &mut Option<Socket>, closed: bool) -> Option<std::io::Result<WsEvent>> {
    match socket.as_mut() {
        Some(socket) if !closed => socket.reader.next().await,
        _ => std::future::pending().await,
    }
}
