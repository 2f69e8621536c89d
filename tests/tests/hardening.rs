//! What a server on the open internet meets: half-sent requests, connection and negotiate
//! floods, a POST before the first poll, WebSocket frames that break the rules, silent
//! clients and clients that never shake hands.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hubs::protocol::{HubMessage, Protocol};
use hubs::{EndpointOptions, HubOptions, ServeOptions, Server};
use hubs_examples::interop::TestHub;
use hubs_tests::{RawClient, STEP, http, http_with_body, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

fn test_hub_options() -> HubOptions {
    HubOptions::default().enable_detailed_errors(true)
}

async fn negotiate_status(addr: SocketAddr, path: &str) -> (u16, String) {
    hubs_tests::negotiate(addr, path).await
}

fn token_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).expect("json");
    json["connectionToken"].as_str().expect("token").to_owned()
}

/// Reads from `stream` until the server closes it; the time that took.
async fn time_until_closed(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection for {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_requests_are_cut_and_websockets_are_not() {
    let service = Server::new()
        .hub_with("/testhub", TestHub, test_hub_options())
        .serve_options(ServeOptions::default().header_read_timeout(Duration::from_secs(1)))
        .build()
        .expect("builds");
    let addr = serve(service).await;

    // A connection that never sends anything.
    let mut idle = TcpStream::connect(addr).await.expect("connects");
    // A request whose header comes a byte every 200 ms, forever.
    let mut slow = TcpStream::connect(addr).await.expect("connects");
    let dribble = tokio::spawn(async move {
        let mut sent = 0;
        for byte in b"GET /testhub/negotiate HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[*byte]).await.is_err() {
                return (sent, slow);
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if sent > 100 {
                return (sent, slow);
            }
        }
        (sent, slow)
    });
    // A WebSocket opened at the same time stays open past the deadline.
    let mut client = RawClient::connect(addr, "/testhub", Protocol::Json).await;

    let idle_for = time_until_closed(&mut idle, STEP).await;
    let (sent, mut slow) = dribble.await.expect("the dribbling task");
    let _ = time_until_closed(&mut slow, STEP).await;
    assert!(
        idle_for < Duration::from_secs(5),
        "idle connection held {idle_for:?}"
    );
    assert!(sent < 50, "a header dribbled for {sent} bytes");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let value = client.value("still open");
    let id = client.invoke("Echo", vec![value]).await;
    match client.next_message().await {
        Some(HubMessage::Completion(c)) => assert_eq!(c.invocation_id, id),
        other => panic!("the WebSocket did not survive the header deadline: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_refuse_with_503_and_recover() {
    let service = Server::new()
        .max_connections(3)
        .hub_with_endpoint(
            "/small",
            TestHub,
            test_hub_options(),
            EndpointOptions::default().max_connections(2),
        )
        .hub_with("/testhub", TestHub, test_hub_options())
        .build()
        .expect("builds");
    let observer = service.clone();
    let addr = serve(service).await;

    let a = RawClient::connect(addr, "/small", Protocol::Json).await;
    let _b = RawClient::connect(addr, "/small", Protocol::Json).await;
    // The endpoint is full: negotiate and a new WebSocket get 503, with a clear text.
    let (status, body) = negotiate_status(addr, "/small").await;
    assert_eq!(
        (status, body.as_str()),
        (503, hubs::protocol::wire::SERVER_FULL)
    );
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/small")).await;
    assert!(refused.is_err(), "a third WebSocket was accepted");
    // Another endpoint still has room, until the server is full.
    let _c = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    assert_eq!(negotiate_status(addr, "/testhub").await.0, 503);
    assert_eq!(observer.active_connections(), 3);

    // A connection ends: there is room again.
    a.close().await;
    tokio::time::timeout(STEP, async {
        while observer.active_connections() > 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the ended connection gave its place back");
    assert_eq!(negotiate_status(addr, "/small").await.0, 200);
    let _d = RawClient::connect(addr, "/small", Protocol::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_negotiate_cap_the_oldest_unused_negotiation_is_evicted() {
    let service = Server::new()
        .max_pending_negotiations(200)
        .hub_with("/testhub", TestHub, test_hub_options())
        .build()
        .expect("builds");
    let addr = serve(service).await;
    let mut tokens = Vec::new();
    for _ in 0..200 {
        let (status, body) = negotiate_status(addr, "/testhub").await;
        assert_eq!(status, 200);
        tokens.push(token_of(&body));
    }
    // Past the cap a negotiate still succeeds; the oldest unused token is gone (404).
    let (status, body) = negotiate_status(addr, "/testhub").await;
    assert_eq!(status, 200, "{body}");
    let oldest = format!("/testhub?id={}", tokens[0]);
    assert_eq!(http(addr, "GET", &oldest, &[]).await.0, 404, "evicted");
    let second = format!("/testhub?id={}", tokens[1]);
    assert_eq!(
        http(addr, "GET", &second, &[]).await.0,
        200,
        "still waiting"
    );
    // The newest ones connect.
    let mut client = RawClient::connect(
        addr,
        &format!("/testhub?id={}", token_of(&body)),
        Protocol::Json,
    )
    .await;
    let value = client.value("x");
    client.invoke("Echo", vec![value]).await;
    assert!(matches!(
        client.next_message().await,
        Some(HubMessage::Completion(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_before_the_first_long_poll_is_kept_for_the_transport() {
    let service = Server::new()
        .hub_with("/testhub", TestHub, test_hub_options())
        .build()
        .expect("builds");
    let addr = serve(service).await;
    let (_, body) = negotiate_status(addr, "/testhub").await;
    let token = token_of(&body);
    // Some clients send the handshake before they poll.
    let target = format!("/testhub?id={token}");
    let (status, _, _) = http_with_body(
        addr,
        "POST",
        &target,
        &[],
        b"{\"protocol\":\"json\",\"version\":1}\x1e",
    )
    .await;
    assert_eq!(status, 200);
    // The first poll starts the transport at once; the next one has the handshake answer.
    assert_eq!(http(addr, "GET", &target, &[]).await.0, 200);
    let (status, _, body) = http(addr, "GET", &target, &[]).await;
    assert_eq!((status, body.as_str()), (200, "{}\x1e"));
    let (status, _, _) = http(addr, "DELETE", &target, &[]).await;
    assert_eq!(status, 202);
}

/// Connects a bare WebSocket client to `/testhub` and completes the JSON handshake.
async fn handshaken(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/testhub"))
        .await
        .expect("connects");
    socket
        .send(Message::Text(
            "{\"protocol\":\"json\",\"version\":1}\u{1e}".into(),
        ))
        .await
        .expect("sends");
    match socket.next().await {
        Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "{}\u{1e}"),
        other => panic!("no handshake answer: {other:?}"),
    }
    socket
}

/// The hub Close text and the WebSocket close code the server ended with.
async fn ending(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> (Option<String>, Option<CloseCode>) {
    let (mut close, mut code) = (None, None);
    while let Ok(Some(message)) = tokio::time::timeout(STEP, socket.next()).await {
        match message {
            Ok(Message::Text(text)) if text.contains("\"type\":7") => {
                close = Some(text.as_str().to_owned());
            }
            Ok(Message::Close(frame)) => {
                code = frame.map(|f| f.code);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (close, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_violations_close_with_their_codes_and_a_hub_close() {
    let service = Server::new()
        .hub_with("/testhub", TestHub, test_hub_options())
        .build()
        .expect("builds");
    let addr = serve(service).await;

    // Text that is not UTF-8: 1007.
    let mut socket = handshaken(addr).await;
    let frame = Frame::message(vec![0xff, 0xfe, 0x1e], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(frame)).await.expect("sends");
    let (close, code) = ending(&mut socket).await;
    assert_eq!(code, Some(CloseCode::Invalid));
    let close = close.expect("a hub Close message");
    assert!(
        close.contains("Connection closed with an error."),
        "{close}"
    );
    assert!(close.contains("\"allowReconnect\":true"), "{close}");

    // A WebSocket message has no limit of its own (it is a stream of hub messages); one
    // hub message over the hub's limit (32 KiB) gets the official text, and a normal
    // closing handshake.
    let mut socket = handshaken(addr).await;
    let _ = socket
        .send(Message::Binary(vec![b'x'; 2 << 20].into()))
        .await;
    let (close, code) = ending(&mut socket).await;
    assert_eq!(code, Some(CloseCode::Normal));
    let close = close.expect("a hub Close message");
    assert!(
        close.contains("Connection closed with an error."),
        "{close}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_client_timeout_with_the_official_text() {
    let service = Server::new()
        .hub_with(
            "/testhub",
            TestHub,
            test_hub_options()
                .keep_alive_interval(Duration::from_millis(200))
                .client_timeout(Duration::from_secs(1)),
        )
        .build()
        .expect("builds");
    let addr = serve(service).await;
    let mut client = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    // The first Ping arms the timeout; then nothing.
    client.send(&HubMessage::Ping).await;
    let started = Instant::now();
    let close = loop {
        match client.next_message().await {
            Some(HubMessage::Close(close)) => break close,
            Some(_) => {}
            None => panic!("closed without a Close message"),
        }
    };
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        close.error.as_deref(),
        Some(
            "Connection closed with an error. TimeoutException: Client hasn't sent a message/ping within the configured ClientTimeoutInterval."
        )
    );
    assert!(close.allow_reconnect);
    assert!(client.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_shakes_hands_is_closed_after_the_handshake_timeout() {
    let service = Server::new()
        .hub_with(
            "/testhub",
            TestHub,
            test_hub_options().handshake_timeout(Duration::from_millis(500)),
        )
        .build()
        .expect("builds");
    let addr = serve(service).await;
    let mut client = RawClient::connect_raw(addr, "/testhub", Protocol::Json).await;
    let started = Instant::now();
    let answer = client.next_frame().await.expect("a handshake answer");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(answer, b"{\"error\":\"Handshake was canceled.\"}\x1e");
    assert!(client.closed().await);
}
