//! Raw connection endpoints (`Server::connection_handler`): the transports without the hub
//! protocol. The handler sees what the client sends, its sends reach the client in order,
//! the handler's return ends the connection, and a transport-side end (a long-polling
//! DELETE) drops the handler and fails its senders. (The official client drives `/echo` on
//! every transport in `interop.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use hubs::{
    Server, TransportKind,
    runtime::{RawConnection, RawSender},
};
use hubs_tests::{RawClient, STEP, http, http_with_body, serve};
use tokio::sync::mpsc;

/// What the handler reports to the test.
#[derive(Debug)]
enum Event {
    Started(TransportKind, RawSender),
    Received(String),
    Dropped,
}

struct OnDrop(mpsc::UnboundedSender<Event>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Event::Dropped);
    }
}

/// Answers `upper:x` with `X`, ends the connection on `bye` (after a last message), and
/// reports everything.
async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let (events, rx) = mpsc::unbounded_channel();
    let service = Server::new()
        .connection_handler("/raw", move |mut connection: RawConnection| {
            let events = events.clone();
            async move {
                let _guard = OnDrop(events.clone());
                let _ = events.send(Event::Started(connection.transport(), connection.sender()));
                while let Some(message) = connection.recv().await {
                    let text = String::from_utf8_lossy(&message).into_owned();
                    let _ = events.send(Event::Received(text.clone()));
                    if text == "bye" {
                        let _ = connection.send("goodbye").await;
                        return;
                    }
                    let reply = text.strip_prefix("upper:").unwrap_or(&text).to_uppercase();
                    if connection.send(reply).await.is_err() {
                        return;
                    }
                }
            }
        })
        .build()
        .expect("builds");
    (serve(service).await, rx)
}

async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(STEP, events.recv())
        .await
        .expect("an event in time")
        .expect("the handler's channel is open")
}

async fn negotiate(addr: SocketAddr) -> String {
    let (status, _, body) = http(addr, "POST", "/raw/negotiate?negotiateVersion=1", &[]).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["connectionToken"].as_str().expect("token").to_owned()
}

async fn poll(addr: SocketAddr, token: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", &format!("/raw?id={token}"), &[]).await;
    (status, body)
}

async fn post(addr: SocketAddr, token: &str, body: &[u8]) -> u16 {
    http_with_body(addr, "POST", &format!("/raw?id={token}"), &[], body)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_without_negotiate_gets_answers_and_a_clean_close() {
    let (addr, mut events) = server().await;
    let mut client = RawClient::connect_raw(addr, "/raw", hubs::protocol::Protocol::Json).await;
    let Event::Started(transport, _) = next(&mut events).await else {
        panic!("the handler starts first")
    };
    assert_eq!(transport, TransportKind::WebSockets);

    client.send_text("upper:abc").await;
    assert_eq!(client.next_frame().await.as_deref(), Some(&b"ABC"[..]));
    client.send_text("bye").await;
    assert_eq!(client.next_frame().await.as_deref(), Some(&b"goodbye"[..]));
    // The handler returned: the server closes the socket.
    assert!(
        client.closed().await,
        "the server closes after the handler returns"
    );
    assert!(matches!(next(&mut events).await, Event::Received(t) if t == "upper:abc"));
    assert!(matches!(next(&mut events).await, Event::Received(t) if t == "bye"));
    assert!(matches!(next(&mut events).await, Event::Dropped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_batches_replies_and_delete_drops_the_handler() {
    let (addr, mut events) = server().await;
    let token = negotiate(addr).await;
    assert_eq!(poll(addr, &token).await, (200, String::new()), "first poll");
    let Event::Started(transport, sender) = next(&mut events).await else {
        panic!("the handler starts on the first poll")
    };
    assert_eq!(transport, TransportKind::LongPolling);

    // No handshake: the first POST is already data.
    assert_eq!(post(addr, &token, b"upper:one").await, 200);
    assert_eq!(post(addr, &token, b"upper:two").await, 200);
    for expected in ["upper:one", "upper:two"] {
        assert!(matches!(next(&mut events).await, Event::Received(t) if t == expected));
    }
    // Both replies were queued before this poll: one response carries them.
    assert_eq!(poll(addr, &token).await, (200, "ONETWO".to_owned()));

    // A sender held by another task reaches the client too.
    sender
        .send("from elsewhere")
        .await
        .expect("the connection is open");
    assert_eq!(poll(addr, &token).await, (200, "from elsewhere".to_owned()));

    let (status, _, _) = http(addr, "DELETE", &format!("/raw?id={token}"), &[]).await;
    assert_eq!(status, 202);
    assert!(matches!(next(&mut events).await, Event::Dropped));
    assert!(
        sender.send("too late").await.is_err(),
        "a send after the end fails"
    );
    assert_eq!(poll(addr, &token).await.0, 204, "a poll after the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_carry_each_reply_as_an_event() {
    let (addr, mut events) = server().await;
    let token = negotiate(addr).await;
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!(
                "GET /raw?id={token} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("writes");
    let Event::Started(transport, _) = next(&mut events).await else {
        panic!("the handler starts with the event stream")
    };
    assert_eq!(transport, TransportKind::ServerSentEvents);
    assert_eq!(post(addr, &token, b"upper:sse").await, 200);

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP;
    while !String::from_utf8_lossy(&seen).contains("data: SSE\r\n\r\n") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("the event in time")
            .expect("reads");
        assert!(n > 0, "the stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    // The client went away: the handler is dropped.
    let dropped = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if matches!(next(&mut events).await, Event::Dropped) {
                break;
            }
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "closing the event stream ends the connection"
    );
}
