//! The load generator's side of each wire protocol: SignalR (JSON or MessagePack), Socket.IO
//! v5 over Engine.IO v4, and JSON-RPC 2.0, all over WebSockets. A [`Peer`] connects and
//! completes its protocol's handshake, frames echo and broadcast requests, and reads what
//! the server sends as [`Event`]s, answering pings itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hubs::protocol::{
    HandshakeRequest, HubMessage, Invocation, MessageDecoder, Outcome, Protocol, Value,
};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

type Socket = WebSocketStream<tokio::net::TcpStream>;

/// Which protocol a peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// SignalR's hub protocol, skipping negotiation.
    SignalR(Protocol),
    /// Socket.IO v5 over Engine.IO v4, WebSocket only.
    SocketIo,
    /// JSON-RPC 2.0.
    JsonRpc,
}

impl Wire {
    /// `signalr-json`, `signalr-messagepack`, `socketio`, `jsonrpc`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SignalR(Protocol::Json) => "signalr-json",
            Self::SignalR(Protocol::MessagePack) => "signalr-messagepack",
            Self::SocketIo => "socketio",
            Self::JsonRpc => "jsonrpc",
        }
    }

    /// From `--wire` and `--protocol`.
    pub fn parse(wire: &str, protocol: &str) -> Option<Self> {
        match wire {
            "signalr" => Protocol::from_name(protocol).map(Self::SignalR),
            "socketio" => Some(Self::SocketIo),
            "jsonrpc" => Some(Self::JsonRpc),
            _ => None,
        }
    }
}

/// Protocol defects the load generator saw.
#[derive(Debug, Default)]
pub struct Defects {
    /// Frames of the wrong type (text for binary, or the reverse).
    pub wrong_frames: AtomicU64,
    /// Messages that did not decode.
    pub undecodable: AtomicU64,
    /// Messages the scenario did not expect (errors included).
    pub unexpected: AtomicU64,
}

impl Defects {
    /// Every defect.
    pub fn total(&self) -> u64 {
        self.wrong_frames.load(Ordering::Relaxed)
            + self.undecodable.load(Ordering::Relaxed)
            + self.unexpected.load(Ordering::Relaxed)
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a defect in `counter`, for a frame that yields no event.
    fn none(counter: &AtomicU64) -> Vec<Event> {
        Self::count(counter);
        Vec::new()
    }
}

/// What the server sent, as a scenario sees it.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// The answer to request `id`.
    Reply(u64),
    /// A failed answer to request `id`.
    Failed(u64),
    /// A broadcast delivery carrying `text`.
    Delivery(String),
}

/// One connection of the load generator.
pub struct Peer {
    socket: Socket,
    wire: Wire,
    decoder: Option<MessageDecoder>,
}

impl Peer {
    /// Connects to `url` at `address` (from `source`, if given) and completes the wire's
    /// handshake.
    ///
    /// # Errors
    ///
    /// When the connection or its handshake fails.
    pub async fn connect(
        url: &str,
        address: SocketAddr,
        wire: Wire,
        source: Option<Ipv4Addr>,
    ) -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(SocketAddr::from((source, 0)))?;
        }
        let stream = socket.connect(address).await?;
        stream.set_nodelay(true)?;
        let request = url.into_client_request().map_err(std::io::Error::other)?;
        let (socket, _) =
            client_async_with_config(request, stream, Some(crate::websocket_config()))
                .await
                .map_err(std::io::Error::other)?;
        let mut peer = Self {
            socket,
            wire,
            decoder: match wire {
                Wire::SignalR(protocol) => Some(protocol.decoder().with_max_message_size(None)),
                _ => None,
            },
        };
        peer.handshake().await?;
        Ok(peer)
    }

    async fn handshake(&mut self) -> std::io::Result<()> {
        match self.wire {
            Wire::SignalR(protocol) => {
                let mut handshake = Vec::new();
                HandshakeRequest::new(protocol.name(), 1).encode(&mut handshake);
                self.send(text(handshake)).await?;
                self.next_data().await.map(drop)
            }
            Wire::SocketIo => {
                // Engine.IO's open packet, then Socket.IO's connect to "/" and its answer.
                let open = self.next_data().await?;
                if !open.starts_with(b"0") {
                    return Err(std::io::Error::other("no Engine.IO open packet"));
                }
                self.send(Message::Text("40".into())).await?;
                loop {
                    let frame = self.next_data().await?;
                    if frame.starts_with(b"40") {
                        return Ok(());
                    }
                    if frame.as_ref() == b"2" {
                        self.send(Message::Text("3".into())).await?;
                    }
                }
            }
            Wire::JsonRpc => Ok(()),
        }
    }

    /// Subscribes to broadcasts, where the wire needs it (JSON-RPC); waits for the answer.
    ///
    /// # Errors
    ///
    /// When the connection fails.
    pub async fn subscribe(&mut self) -> std::io::Result<()> {
        if self.wire != Wire::JsonRpc {
            return Ok(());
        }
        self.send(Message::Text(
            r#"{"jsonrpc":"2.0","id":0,"method":"subscribe_receive","params":[]}"#.into(),
        ))
        .await?;
        self.next_data().await.map(drop)
    }

    async fn next_data(&mut self) -> std::io::Result<Bytes> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => return Ok(Bytes::from(text)),
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
                Some(Ok(Message::Close(_))) | None => {
                    return Err(std::io::Error::other("closed during the handshake"));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(std::io::Error::other(error)),
            }
        }
    }

    /// Sends a frame.
    ///
    /// # Errors
    ///
    /// When the connection fails.
    pub async fn send(&mut self, frame: Message) -> std::io::Result<()> {
        self.socket.send(frame).await.map_err(std::io::Error::other)
    }

    /// The request `echo(text)` with id `id`.
    pub fn echo(&self, id: u64, text: &str) -> Message {
        self.request(Some(id), "echo", text)
    }

    /// The request `broadcast(text)`, with id `id` when it is answered.
    pub fn broadcast(&self, id: Option<u64>, text: &str) -> Message {
        self.request(id, "broadcast", text)
    }

    fn request(&self, id: Option<u64>, method: &str, argument: &str) -> Message {
        let quoted = serde_json::to_string(argument).unwrap_or_default();
        match self.wire {
            Wire::SignalR(protocol) => {
                let target = if method == "echo" {
                    "Echo"
                } else {
                    "Broadcast"
                };
                let message = HubMessage::Invocation(Invocation {
                    invocation_id: id.map(|id| id.to_string()),
                    target: target.to_owned(),
                    arguments: vec![
                        Value::serialize(protocol, argument)
                            .unwrap_or_else(|_| Value::null(protocol)),
                    ],
                    ..Default::default()
                });
                let mut out = Vec::new();
                let _ = protocol.encode(&message, &mut out);
                match protocol {
                    Protocol::Json => text(out),
                    Protocol::MessagePack => Message::Binary(out.into()),
                }
            }
            Wire::SocketIo => {
                let ack = id.map(|id| id.to_string()).unwrap_or_default();
                Message::Text(format!(r#"42{ack}["{method}",{quoted}]"#).into())
            }
            Wire::JsonRpc => {
                let id = id.map_or_else(String::new, |id| format!(r#","id":{id}"#));
                Message::Text(
                    format!(r#"{{"jsonrpc":"2.0"{id},"method":"{method}","params":[{quoted}]}}"#)
                        .into(),
                )
            }
        }
    }

    /// Sends `frame`, reading (and dropping) what arrives meanwhile: a sender that also
    /// receives what it sends never stops reading, as the official clients do not.
    ///
    /// # Errors
    ///
    /// When the connection fails or ends.
    pub async fn send_reading(&mut self, frame: Message) -> std::io::Result<()> {
        use futures_util::{Sink, Stream};
        use std::pin::Pin;
        use std::task::Poll;
        let socket = &mut self.socket;
        let mut frame = Some(frame);
        std::future::poll_fn(|cx| {
            loop {
                match Pin::new(&mut *socket).poll_next(cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(error))) => {
                        return Poll::Ready(Err(std::io::Error::other(error)));
                    }
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    Poll::Pending => break,
                }
            }
            if let Some(next) = frame.take() {
                match Pin::new(&mut *socket).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Err(error) = Pin::new(&mut *socket).start_send(next) {
                            return Poll::Ready(Err(std::io::Error::other(error)));
                        }
                    }
                    Poll::Ready(Err(error)) => {
                        return Poll::Ready(Err(std::io::Error::other(error)));
                    }
                    Poll::Pending => {
                        frame = Some(next);
                        return Poll::Pending;
                    }
                }
            }
            Pin::new(&mut *socket)
                .poll_flush(cx)
                .map_err(std::io::Error::other)
        })
        .await
    }

    /// The next events (one frame's worth), answering pings and counting defects; `None`
    /// when the connection ends.
    pub async fn events(&mut self, defects: &Defects) -> Option<Vec<Event>> {
        loop {
            let frame = self.socket.next().await?.ok()?;
            let bytes: Bytes = match (frame, self.wire) {
                (Message::Binary(bytes), Wire::SignalR(Protocol::MessagePack)) => bytes,
                (
                    Message::Text(text),
                    Wire::SignalR(Protocol::Json) | Wire::SocketIo | Wire::JsonRpc,
                ) => Bytes::from(text),
                (Message::Text(_) | Message::Binary(_), _) => {
                    Defects::count(&defects.wrong_frames);
                    continue;
                }
                (Message::Close(_), _) => return None,
                _ => continue,
            };
            let events = match self.wire {
                Wire::SignalR(_) => self.signalr(&bytes, defects)?,
                Wire::SocketIo => {
                    if bytes.as_ref() == b"2" {
                        self.send(Message::Text("3".into())).await.ok()?;
                        continue;
                    }
                    socketio(&bytes, defects)
                }
                Wire::JsonRpc => jsonrpc(&bytes, defects),
            };
            if !events.is_empty() {
                return Some(events);
            }
        }
    }

    fn signalr(&mut self, bytes: &[u8], defects: &Defects) -> Option<Vec<Event>> {
        let decoder = self.decoder.as_mut()?;
        decoder.push(bytes);
        let mut out = Vec::new();
        loop {
            match decoder.next_message() {
                Ok(Some(HubMessage::Ping)) => {}
                Ok(Some(HubMessage::Completion(completion))) => {
                    let Ok(id) = completion.invocation_id.parse() else {
                        Defects::count(&defects.unexpected);
                        continue;
                    };
                    out.push(match completion.outcome {
                        Outcome::Error(_) => Event::Failed(id),
                        _ => Event::Reply(id),
                    });
                }
                Ok(Some(HubMessage::Invocation(Invocation {
                    target, arguments, ..
                }))) if target == "Receive" => out.push(Event::Delivery(
                    arguments
                        .first()
                        .and_then(|a| a.deserialize::<String>().ok())
                        .unwrap_or_default(),
                )),
                Ok(Some(_)) => Defects::count(&defects.unexpected),
                Ok(None) => break,
                Err(_) => {
                    Defects::count(&defects.undecodable);
                    if decoder.next_message().is_err() {
                        return None;
                    }
                }
            }
        }
        Some(out)
    }
}

fn text(bytes: Vec<u8>) -> Message {
    Message::Text(String::from_utf8(bytes).unwrap_or_default().into())
}

/// One Engine.IO message packet carrying a Socket.IO packet: `43<id>[…]` (an ack) or
/// `42["receive",…]` (an event).
fn socketio(bytes: &[u8], defects: &Defects) -> Vec<Event> {
    let Some(packet) = bytes.strip_prefix(b"4") else {
        return Defects::none(&defects.unexpected);
    };
    match packet.split_first() {
        Some((b'3', rest)) => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            match std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                Some(id) => vec![Event::Reply(id)],
                None => Defects::none(&defects.undecodable),
            }
        }
        Some((b'2', rest)) => match serde_json::from_slice::<(String, String)>(rest) {
            Ok((event, text)) if event == "receive" => vec![Event::Delivery(text)],
            Ok(_) => Defects::none(&defects.unexpected),
            Err(_) => Defects::none(&defects.undecodable),
        },
        _ => Defects::none(&defects.unexpected),
    }
}

/// A JSON-RPC response (`id` with `result` or `error`) or a `receive` notification.
fn jsonrpc(bytes: &[u8], defects: &Defects) -> Vec<Event> {
    #[derive(serde::Deserialize)]
    struct Frame {
        id: Option<u64>,
        method: Option<String>,
        params: Option<Notification>,
        error: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Notification {
        result: String,
    }
    match serde_json::from_slice::<Frame>(bytes) {
        Ok(Frame {
            id: Some(id),
            error: None,
            ..
        }) => vec![Event::Reply(id)],
        Ok(Frame {
            id: Some(id),
            error: Some(_),
            ..
        }) => vec![Event::Failed(id)],
        Ok(Frame {
            method: Some(method),
            params: Some(notification),
            ..
        }) if method == "receive" => vec![Event::Delivery(notification.result)],
        Ok(_) => Defects::none(&defects.unexpected),
        Err(_) => Defects::none(&defects.undecodable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_packets() {
        let defects = Defects::default();
        assert_eq!(socketio(br#"4312["xx"]"#, &defects), [Event::Reply(12)]);
        assert_eq!(
            socketio(br#"42["receive","hi"]"#, &defects),
            [Event::Delivery("hi".into())]
        );
        assert_eq!(defects.total(), 0);
        assert!(socketio(b"41", &defects).is_empty());
        assert_eq!(defects.total(), 1);
    }

    #[test]
    fn jsonrpc_frames() {
        let defects = Defects::default();
        assert_eq!(
            jsonrpc(br#"{"jsonrpc":"2.0","id":7,"result":"x"}"#, &defects),
            [Event::Reply(7)]
        );
        assert_eq!(
            jsonrpc(
                br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}"#,
                &defects
            ),
            [Event::Failed(7)]
        );
        assert_eq!(
            jsonrpc(
                br#"{"jsonrpc":"2.0","method":"receive","params":{"subscription":"s","result":"hi"}}"#,
                &defects
            ),
            [Event::Delivery("hi".into())]
        );
        assert_eq!(defects.total(), 0);
    }
}
