//! The baseline: the least work that speaks enough SignalR for the bench scenarios, on the
//! same stack as hubs (tokio, tungstenite, the hubs protocol codec) but without its hub
//! runtime: no negotiate, no dispatcher, no lifetime manager, no keep-alive. `Echo(text)`
//! answers with its argument; `Broadcast(text)` sends `Receive(text)` to every connection
//! (encoded once per protocol) and completes.
//!
//! `baseline-server --port 5001` prints `listening on http://127.0.0.1:<port>`.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hubs::protocol::{
    Completion, HandshakeRequest, HandshakeResponse, HubMessage, Invocation, Protocol, Value,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<Vec<(u64, Protocol, mpsc::UnboundedSender<Message>)>>>;

fn frame(protocol: Protocol, bytes: Bytes) -> Message {
    match protocol {
        Protocol::Json => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Message::Text(text.into()),
            Err(_) => Message::Binary(bytes),
        },
        Protocol::MessagePack => Message::Binary(bytes),
    }
}

fn encode(protocol: Protocol, message: &HubMessage) -> Bytes {
    let mut out = Vec::new();
    let _ = protocol.encode(message, &mut out);
    out.into()
}

async fn connection(stream: tokio::net::TcpStream, id: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let Ok(socket) =
        tokio_tungstenite::accept_async_with_config(stream, Some(hubs_bench::websocket_config()))
            .await
    else {
        return;
    };
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    // Handshake.
    let mut buffer = BytesMut::new();
    let request = loop {
        match HandshakeRequest::decode(&mut buffer, None) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(_) => return,
        }
        match source.next().await {
            Some(Ok(Message::Text(text))) => buffer.extend_from_slice(text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => buffer.extend_from_slice(&bytes),
            Some(Ok(_)) => {}
            _ => return,
        }
    };
    let Some(protocol) = Protocol::from_name(&request.protocol) else {
        return;
    };
    let mut response = Vec::new();
    HandshakeResponse::ok().encode(&mut response);
    let _ = tx.send(frame(protocol, response.into()));
    peers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, protocol, tx.clone()));

    let mut decoder = protocol.decoder().with_max_message_size(Some(64 * 1024));
    decoder.push(&buffer);
    'read: loop {
        loop {
            match decoder.next_message() {
                Ok(Some(HubMessage::Invocation(Invocation {
                    invocation_id,
                    target,
                    mut arguments,
                    ..
                }))) => {
                    let Some(argument) = arguments.pop() else {
                        continue;
                    };
                    if target == "Broadcast" {
                        let text: String = argument.deserialize().unwrap_or_default();
                        let mut cache: [Option<Bytes>; 2] = [None, None];
                        let peers = peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        for (_, peer_protocol, peer) in peers {
                            let bytes = cache[peer_protocol as usize]
                                .get_or_insert_with(|| {
                                    let value = Value::serialize(peer_protocol, &text)
                                        .unwrap_or_else(|_| Value::null(peer_protocol));
                                    encode(
                                        peer_protocol,
                                        &HubMessage::Invocation(Invocation {
                                            target: "Receive".into(),
                                            arguments: vec![value],
                                            ..Default::default()
                                        }),
                                    )
                                })
                                .clone();
                            let _ = peer.send(frame(peer_protocol, bytes));
                        }
                        if let Some(id) = invocation_id {
                            let done = Completion::result(id, Value::null(protocol));
                            let _ = tx.send(frame(
                                protocol,
                                encode(protocol, &HubMessage::Completion(done)),
                            ));
                        }
                    } else if let Some(id) = invocation_id {
                        let done = Completion::result(id, argument);
                        let _ = tx.send(frame(
                            protocol,
                            encode(protocol, &HubMessage::Completion(done)),
                        ));
                    }
                }
                Ok(Some(HubMessage::Close(_))) => break 'read,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) if error.is_fatal() => break 'read,
                Err(_) => {}
            }
        }
        match source.next().await {
            Some(Ok(Message::Text(text))) => decoder.push(text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => decoder.push(&bytes),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    peers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(peer, _, _)| *peer != id);
    drop(tx);
    let _ = writer.await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = <hubs_bench::PortArgs as clap::Parser>::parse()
        .port
        .unwrap_or(5001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let peers: Peers = Arc::default();
    let mut next = 0u64;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        next += 1;
        tokio::spawn(connection(stream, next, peers.clone()));
    }
}
