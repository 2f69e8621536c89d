//! Stateful reconnect, the Rust client against the hubs server, through a TCP proxy that
//! cuts the socket: the connection resumes with every message once, in order, in both
//! directions; a client that comes back after the server's window gets a new connection;
//! a client that never acknowledges fills the server's replay buffer and is closed.
//! (The official JavaScript client does the same in `interop/js/stateful.test.mjs`.)

use std::time::Duration;

use hubs::connection::{ConnectionEvent, ConnectionState, HubConnection};
use hubs::protocol::{HandshakeRequest, HubMessage, Protocol};
use hubs::{Context, HubOptions, Server, hub};
use hubs_tests::{RawClient, TcpProxy, interop_server, within};
use tokio::sync::mpsc;

fn collect(connection: &HubConnection) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    connection.on("GroupMessage", move |(_group, text): (String, String)| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(text);
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_resumes_through_a_cut_socket() {
    let server = interop_server().await;
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let proxy = TcpProxy::start(server).await;
        let receiver = HubConnection::builder(format!("http://{}/testhub", proxy.addr()))
            .protocol(protocol)
            .with_stateful_reconnect()
            .build();
        let sender = HubConnection::builder(format!("http://{server}/testhub"))
            .protocol(protocol)
            .build();
        let mut received = collect(&receiver);
        let mut events = receiver.events();
        within("start", receiver.start()).await.expect("starts");
        within("start", sender.start()).await.expect("starts");
        assert!(receiver.is_stateful(), "{protocol}: the server accepted");
        let id = receiver.connection_id();
        let group = format!("stateful-{protocol}");
        within("join", receiver.invoke::<()>("JoinGroup", (&group,)))
            .await
            .expect("joins");

        let sent: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
        for (i, text) in sent.iter().enumerate() {
            if i == 20 {
                proxy.cut();
                // Sent while the socket is down: kept and replayed after the resume.
                receiver
                    .send("SendToGroup", (&group, "from-receiver"))
                    .await
                    .expect("buffered while resuming");
            }
            within("send", sender.invoke::<()>("SendToGroup", (&group, text)))
                .await
                .expect("sends");
        }
        let mut got = Vec::new();
        while got.len() < sent.len() + 1 {
            got.push(
                within("every message", received.recv())
                    .await
                    .expect("message"),
            );
        }
        let mine: Vec<_> = got.iter().filter(|m| *m == "from-receiver").collect();
        assert_eq!(
            mine.len(),
            1,
            "{protocol}: the receiver's own message, once"
        );
        got.retain(|m| m != "from-receiver");
        assert_eq!(got, sent, "{protocol}: every message once, in order");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(received.try_recv().is_err(), "{protocol}: no duplicates");

        assert!(matches!(
            within("reconnecting", events.recv()).await,
            Ok(ConnectionEvent::Reconnecting(_))
        ));
        assert_eq!(
            within("resumed", events.recv()).await,
            Ok(ConnectionEvent::Resumed)
        );
        assert_eq!(
            receiver.connection_id(),
            id,
            "{protocol}: the same connection"
        );
        assert_eq!(receiver.state(), ConnectionState::Connected);
        let echoed: Option<String> = within("echo", receiver.invoke("Echo", ("after",)))
            .await
            .expect("echo");
        assert_eq!(echoed.as_deref(), Some("after"));
        receiver.stop().await;
        sender.stop().await;
    }
}

struct Short;

#[hub]
impl Short {
    pub(crate) fn echo(&self, text: String) -> String {
        text
    }

    pub(crate) async fn join(&self, cx: &Context<Self>, group: String) {
        let _ = cx.groups().add(cx.connection_id(), &group).await;
    }

    pub(crate) fn count(&self, n: u32) -> impl futures_util::Stream<Item = u32> + use<> {
        futures_util::StreamExt::then(futures_util::stream::iter(0..n), |i| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            i
        })
    }

    pub(crate) async fn ask(&self, cx: &Context<Self>) -> Result<String, hubs::HubError> {
        cx.clients().caller().invoke("Answer", ()).await
    }

    pub(crate) async fn flood(&self, cx: &Context<Self>, group: String, count: u32, size: usize) {
        let text = "x".repeat(size);
        for _ in 0..count {
            let _ = cx.clients().group(&group).send("Flood", (&text,)).await;
        }
    }
}

/// A hub with stateful reconnect and a short window, a small replay buffer and queue.
async fn short_window_server() -> std::net::SocketAddr {
    let options = HubOptions::default()
        .allow_stateful_reconnects(true)
        .stateful_reconnect_window(Duration::from_millis(500))
        .stateful_reconnect_buffer_size(4_096)
        .outbound_budget(hubs_tests::small_budget());
    let service = Server::new()
        .hub_with("/short", Short, options)
        .build()
        .expect("builds");
    hubs_tests::serve(service).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_after_the_window_gets_a_new_connection() {
    let server = short_window_server().await;
    let proxy = TcpProxy::start(server).await;
    let connection = HubConnection::builder(format!("http://{}/short", proxy.addr()))
        .with_stateful_reconnect()
        .resume_window(Duration::from_millis(1500))
        .with_retry_policy(|retries: u32, _: Duration| {
            (retries < 20).then_some(Duration::from_millis(100))
        })
        .build();
    let mut events = connection.events();
    within("start", connection.start()).await.expect("starts");
    let before = connection.connection_id();
    assert!(before.is_some());

    // Away longer than the server waits.
    proxy.refuse(true);
    proxy.cut();
    assert!(matches!(
        within("reconnecting", events.recv()).await,
        Ok(ConnectionEvent::Reconnecting(_))
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.refuse(false);
    match within("reconnected", events.recv()).await {
        Ok(ConnectionEvent::Reconnected(id)) => {
            assert!(id.is_some());
            assert_ne!(id, before, "a new connection");
        }
        other => panic!("expected Reconnected, got {other:?}"),
    }
    let echoed: String = within("echo", connection.invoke("Echo", ("new",)))
        .await
        .expect("echo");
    assert_eq!(echoed, "new");
    connection.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_acknowledges_is_closed_when_the_buffer_fills() {
    let server = short_window_server().await;
    let (status, _, body) = hubs_tests::http(
        server,
        "POST",
        "/short/negotiate?negotiateVersion=1&useStatefulReconnect=true",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let negotiated: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(negotiated["useStatefulReconnect"], true);
    let token = negotiated["connectionToken"].as_str().expect("token");

    // A raw client: handshake version 2, reads everything, never sends an Ack.
    let mut raw =
        RawClient::connect_raw(server, &format!("/short?id={token}"), Protocol::Json).await;
    let mut handshake = Vec::new();
    HandshakeRequest::new("json", 2).encode(&mut handshake);
    raw.send_text(handshake).await;
    assert_eq!(raw.next_frame().await.expect("handshake"), b"{}\x1e");
    let join = raw.value("silent");
    raw.invoke("Join", vec![join]).await;
    loop {
        match within("joined", raw.next_message()).await {
            Some(HubMessage::Completion(_)) => break,
            Some(_) => {}
            None => panic!("closed before joining"),
        }
    }

    let flooder = HubConnection::builder(format!("http://{server}/short")).build();
    within("start", flooder.start()).await.expect("starts");
    within(
        "flood",
        flooder.invoke::<()>("Flood", ("silent", 200u32, 1024usize)),
    )
    .await
    .expect("floods");

    let mut items = 0;
    let close = loop {
        match within("the close", raw.next_message()).await {
            Some(HubMessage::Invocation(_)) => items += 1,
            Some(HubMessage::Close(close)) => break close,
            Some(_) => {}
            None => panic!("closed without a Close message"),
        }
    };
    assert_eq!(
        close.error.as_deref(),
        Some(hubs::protocol::wire::closed_with_error(None).as_str())
    );
    // About 4 KiB of 1 KiB messages, plus the queue: far fewer than were sent.
    assert!(
        (4..100).contains(&items),
        "{items} messages before the close"
    );
    // The server keeps serving everyone else.
    let echoed: String = within("echo", flooder.invoke("Echo", ("still here",)))
        .await
        .expect("echo");
    assert_eq!(echoed, "still here");
    flooder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_and_a_client_result_survive_a_cut() {
    let server = short_window_server().await;
    let proxy = TcpProxy::start(server).await;
    let connection = HubConnection::builder(format!("http://{}/short", proxy.addr()))
        .with_stateful_reconnect()
        .build();
    // The client's answer takes a while: the socket is cut before it goes out.
    connection.on("Answer", |()| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok::<_, String>("answered".to_owned())
    });
    let mut events = connection.events();
    within("start", connection.start()).await.expect("starts");
    let id = connection.connection_id();

    let stream: hubs::connection::ClientStream<u32> =
        within("stream", connection.stream("Count", (300u32,)))
            .await
            .expect("stream");
    let asking = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.invoke::<String>("Ask", ()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.cut();
    let items: Vec<u32> = within(
        "the whole stream",
        futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::map(stream, |i| {
            i.expect("no error")
        })),
    )
    .await;
    assert_eq!(
        items,
        (0..300).collect::<Vec<_>>(),
        "every item once, in order"
    );
    let answer = within("the client result", asking)
        .await
        .expect("task")
        .expect("answered across the cut");
    assert_eq!(answer, "answered");
    assert!(matches!(
        within("reconnecting", events.recv()).await,
        Ok(ConnectionEvent::Reconnecting(_))
    ));
    assert_eq!(
        within("resumed", events.recv()).await,
        Ok(ConnectionEvent::Resumed)
    );
    assert_eq!(connection.connection_id(), id);
    connection.stop().await;
}
