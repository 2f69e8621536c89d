//! Byte-level: the Rust client sends what the official clients send for the same calls:
//! negotiate (`POST {hub}/negotiate?negotiateVersion=1`, empty body), the WebSocket URL
//! with `id=<connectionToken>`, the handshake, a Ping right after it, and invocation
//! frames (the .NET client's field order and 6-element MessagePack arrays).

#![allow(clippy::result_large_err)] // tungstenite's accept callback signature

use futures_util::{SinkExt, StreamExt};
use hubs::connection::HubConnection;
use hubs::protocol::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const NEGOTIATE: &str = r#"{"negotiateVersion":1,"connectionId":"abc","connectionToken":"tok","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#;

/// A fake server: answers negotiate, accepts the WebSocket, answers the handshake, and
/// returns what it saw: the negotiate request head, the WebSocket path, and the frames.
async fn capture(protocol: Protocol, calls: usize) -> (String, String, Vec<Message>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    let client = tokio::spawn(async move {
        let connection = HubConnection::builder(format!("http://{addr}/hub"))
            .protocol(protocol)
            .build();
        connection.start().await.expect("starts");
        let _: Result<(), _> = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            connection.invoke::<()>("Send", ("ann", 42)),
        )
        .await
        .unwrap_or(Ok(()));
        connection.send("Send", ("ann", 42)).await.expect("sends");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        connection
    });

    // Negotiate.
    let (mut stream, _) = listener.accept().await.expect("negotiate");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("reads");
        head.push(byte[0]);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{NEGOTIATE}",
        NEGOTIATE.len()
    );
    stream.write_all(response.as_bytes()).await.expect("writes");
    drop(stream);

    // The WebSocket.
    let (stream, _) = listener.accept().await.expect("websocket");
    let path = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = path.clone();
    let mut socket = tokio_tungstenite::accept_hdr_async(
        stream,
        move |request: &Request, response: Response| {
            *seen.lock().expect("lock") = request.uri().to_string();
            Ok(response)
        },
    )
    .await
    .expect("accepts");
    let handshake = socket.next().await.expect("handshake").expect("frame");
    socket
        .send(Message::Text("{}\u{1e}".into()))
        .await
        .expect("answers");
    let mut frames = vec![handshake];
    while frames.len() < 2 + calls {
        match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(frame))) => frames.push(frame),
            _ => break,
        }
    }
    let connection = client.await.expect("client task");
    connection.stop().await;
    let path = path.lock().expect("lock").clone();
    (String::from_utf8_lossy(&head).into_owned(), path, frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bytes_match_the_official_clients() {
    let (head, path, frames) = capture(Protocol::Json, 2).await;
    assert!(
        head.starts_with("POST /hub/negotiate?negotiateVersion=1 HTTP/1.1\r\n"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-requested-with: xmlhttprequest"));
    assert!(lower.contains("user-agent: microsoft signalr/"));
    assert!(!lower.contains("content-length: ") || lower.contains("content-length: 0"));
    assert_eq!(path, "/hub?id=tok");
    assert_eq!(
        frames[0],
        Message::Text("{\"protocol\":\"json\",\"version\":1}\u{1e}".into())
    );
    assert_eq!(frames[1], Message::Text("{\"type\":6}\u{1e}".into()));
    assert_eq!(
        frames[2],
        Message::Text("{\"type\":1,\"invocationId\":\"1\",\"target\":\"Send\",\"arguments\":[\"ann\",42]}\u{1e}".into())
    );
    assert_eq!(
        frames[3],
        Message::Text("{\"type\":1,\"target\":\"Send\",\"arguments\":[\"ann\",42]}\u{1e}".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messagepack_bytes_match_the_official_clients() {
    let (_, path, frames) = capture(Protocol::MessagePack, 2).await;
    assert_eq!(path, "/hub?id=tok");
    // The handshake is JSON text even for MessagePack, as the official clients send it.
    assert_eq!(
        frames[0],
        Message::Text("{\"protocol\":\"messagepack\",\"version\":1}\u{1e}".into())
    );
    assert_eq!(frames[1], Message::Binary(vec![0x02, 0x91, 0x06].into()));
    // [1, {}, "1", "Send", ["ann", 42], []], as the .NET client writes it.
    let invocation = [
        0x11, 0x96, 0x01, 0x80, 0xa1, 0x31, 0xa4, b'S', b'e', b'n', b'd', 0x92, 0xa3, b'a', b'n',
        b'n', 0x2a, 0x90,
    ];
    assert_eq!(frames[2], Message::Binary(invocation.to_vec().into()));
    let send = [
        0x10, 0x96, 0x01, 0x80, 0xc0, 0xa4, b'S', b'e', b'n', b'd', 0x92, 0xa3, b'a', b'n', b'n',
        0x2a, 0x90,
    ];
    assert_eq!(frames[3], Message::Binary(send.to_vec().into()));
}
