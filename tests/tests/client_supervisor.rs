//! The Rust client's supervisor: each defect of the lock-based client, provoked on
//! loopback. Stop during a reconnect and stop during start end the connection for good;
//! an unread stream holds up neither results nor keep-alive; calls from the server run in
//! arrival order; a stream dropped outside a runtime does not panic; stop writes its Close
//! before it returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hubs::connection::{ClientStream, ConnectionEvent, ConnectionState, HubConnection, StartError};
use hubs_tests::{TcpProxy, interop_server, within};
use tokio::sync::{broadcast, mpsc};

/// A hub with finite and endless streams, serving on a free port with a 1 s keep-alive.
struct Counter {
    cancelled: mpsc::UnboundedSender<()>,
}

#[hubs::hub]
impl Counter {
    pub(crate) fn echo(&self, text: String) -> String {
        text
    }

    pub(crate) fn count(&self, n: u32) -> impl futures_util::Stream<Item = u32> + use<> {
        futures_util::stream::iter(0..n)
    }

    pub(crate) fn forever(
        &self,
        cancel: hubs::CancellationToken,
    ) -> impl futures_util::Stream<Item = u32> + use<> {
        let cancelled = self.cancelled.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = cancelled.send(());
        });
        futures_util::stream::iter(0..).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            i
        })
    }
}

/// The counter hub's address, and where its stream cancellations are reported.
async fn counter() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
    let (cancelled, cancellations) = mpsc::unbounded_channel();
    let options = hubs::HubOptions::default().keep_alive_interval(Duration::from_secs(1));
    let service = hubs::Server::new()
        .hub_with("/counter", Counter { cancelled }, options)
        .build()
        .expect("builds");
    (hubs_tests::serve(service).await, cancellations)
}

/// Every event already sent, waiting `quiet` for late ones.
async fn drain(
    events: &mut broadcast::Receiver<ConnectionEvent>,
    quiet: Duration,
) -> Vec<ConnectionEvent> {
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(quiet, events.recv()).await {
        seen.push(event);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_reconnect_ends_it_and_nothing_follows_closed() {
    let proxy = TcpProxy::start(interop_server().await).await;
    let connection = HubConnection::builder(format!("http://{}/testhub", proxy.addr()))
        .with_retry_policy(|_: u32, _: Duration| Some(Duration::from_millis(50)))
        .build();
    let mut events = connection.events();
    within("start", connection.start()).await.expect("starts");

    // Lose the connection; the reconnect attempt hangs in negotiate (the proxy holds it).
    proxy.hold(true);
    proxy.cut();
    assert!(matches!(
        within("reconnecting", events.recv()).await,
        Ok(ConnectionEvent::Reconnecting(_))
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connection.state(), ConnectionState::Reconnecting);

    within("stop", connection.stop()).await;
    assert_eq!(connection.state(), ConnectionState::Disconnected);
    // The attempt in flight goes through now: a reconnect that survived the stop would
    // install its connection and announce it after Closed.
    proxy.hold(false);
    let after = drain(&mut events, Duration::from_millis(700)).await;
    assert_eq!(
        after,
        [ConnectionEvent::Closed(None)],
        "Closed, then nothing"
    );
    assert_eq!(connection.state(), ConnectionState::Disconnected);
    assert_eq!(connection.connection_id(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_start_fails_the_start_and_leaves_it_stopped() {
    // A server that accepts and never answers: negotiate hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                held.lock().unwrap().push(socket);
            }
        });
    }
    let connection = HubConnection::builder(format!("http://{addr}/testhub"))
        .with_automatic_reconnect()
        .build();
    let mut events = connection.events();
    let starting = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.start().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connection.state(), ConnectionState::Connecting);
    within("stop", connection.stop()).await;
    let started = within("start returns", starting).await.expect("task");
    assert!(matches!(started, Err(StartError::Stopped)), "{started:?}");
    assert_eq!(connection.state(), ConnectionState::Disconnected);
    assert_eq!(drain(&mut events, Duration::from_millis(300)).await, []);
    // And it starts again from scratch.
    let (error, ()) = within("second start", async {
        tokio::join!(connection.start(), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            connection.stop().await;
        })
    })
    .await;
    assert!(matches!(error, Err(StartError::Stopped)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_stream_holds_up_neither_calls_nor_keep_alive() {
    let (addr, _) = counter().await;
    let connection = HubConnection::builder(format!("http://{addr}/counter"))
        .server_timeout(Duration::from_secs(3))
        .build();
    within("start", connection.start()).await.expect("starts");
    // 1,000 items, far more than any buffer between the socket and the reader, left unread.
    let mut stream: ClientStream<u32> = within("stream", connection.stream("Count", (1000u32,)))
        .await
        .expect("stream");
    for i in 0..20 {
        let echoed: String = within(
            "echo behind an unread stream",
            connection.invoke("Echo", (format!("{i}"),)),
        )
        .await
        .expect("echo");
        assert_eq!(echoed, format!("{i}"));
    }
    // Longer than the server timeout: keep-alive went on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(connection.state(), ConnectionState::Connected);
    let mut items = Vec::new();
    while let Some(item) = within("the stream", stream.next()).await {
        items.push(item.expect("no error"));
    }
    assert_eq!(items, (0..1000).collect::<Vec<_>>(), "every item, in order");
    connection.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_the_server_are_handled_in_arrival_order() {
    let addr = interop_server().await;
    let receiver = HubConnection::builder(format!("http://{addr}/testhub")).build();
    let sender = HubConnection::builder(format!("http://{addr}/testhub")).build();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    receiver.on("GroupMessage", move |(_group, text): (String, String)| {
        let done_tx = done_tx.clone();
        async move {
            // The earlier a message, the longer its handler takes: spawned handlers would
            // finish in reverse.
            let n: u64 = text.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(20u64.saturating_sub(n * 2))).await;
            let _ = done_tx.send(n);
        }
    });
    within("start", receiver.start()).await.expect("starts");
    within("start", sender.start()).await.expect("starts");
    within("join", receiver.invoke::<()>("JoinGroup", ("ordered",)))
        .await
        .expect("joins");
    for n in 0..10u64 {
        sender
            .send("SendToGroup", ("ordered", n.to_string()))
            .await
            .expect("sends");
    }
    let mut order = Vec::new();
    while order.len() < 10 {
        order.push(within("handled", done.recv()).await.expect("handled"));
    }
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    receiver.stop().await;
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_outside_a_runtime_does_not_panic_and_is_cancelled() {
    let (addr, mut cancellations) = counter().await;
    let connection = HubConnection::builder(format!("http://{addr}/counter")).build();
    within("start", connection.start()).await.expect("starts");
    let mut stream: ClientStream<u32> = within("stream", connection.stream("Forever", ()))
        .await
        .expect("stream");
    assert!(within("an item", stream.next()).await.is_some());
    std::thread::spawn(move || drop(stream))
        .join()
        .expect("dropping a stream off the runtime does not panic");
    within("the server's stream is cancelled", cancellations.recv())
        .await
        .expect("cancelled");
    // The connection goes on.
    let echoed: String = within("echo", connection.invoke("Echo", ("on",)))
        .await
        .expect("echo");
    assert_eq!(echoed, "on");
    connection.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_writes_its_close_before_it_returns() {
    use hubs::{HubError, Server, hub};

    struct Watched(mpsc::UnboundedSender<Option<String>>);
    #[hub]
    impl Watched {
        pub(crate) fn ping(&self) {}
        async fn on_disconnected(&self, error: Option<HubError>) {
            let _ = self.0.send(error.map(|e| e.to_string()));
        }
    }
    let (tx, mut disconnected) = mpsc::unbounded_channel();
    let service = Server::new()
        .hub("/watched", Watched(tx))
        .build()
        .expect("builds");
    let addr = hubs_tests::serve(service).await;
    for transport in [
        hubs::TransportKind::WebSockets,
        hubs::TransportKind::ServerSentEvents,
        hubs::TransportKind::LongPolling,
    ] {
        let connection = HubConnection::builder(format!("http://{addr}/watched"))
            .transports([transport])
            .build();
        within("start", connection.start()).await.expect("starts");
        within("ping", connection.invoke::<()>("Ping", ()))
            .await
            .expect("ping");
        within("stop", connection.stop()).await;
        // A clean close: the server saw the client's Close, not a lost transport.
        let error = within("on_disconnected", disconnected.recv())
            .await
            .expect("hook ran");
        assert_eq!(error, None, "{}: clean close", transport.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_call_given_up_before_it_returns_is_cancelled_on_the_server() {
    let (addr, mut cancellations) = counter().await;
    let connection = HubConnection::builder(format!("http://{addr}/counter")).build();
    within("start", connection.start()).await.expect("starts");
    {
        // Polled once (the call is on its way), then dropped: no `ClientStream` is ever
        // made to cancel it.
        let call = connection.stream::<u32>("Forever", ());
        futures_util::pin_mut!(call);
        let _ = futures_util::poll!(call.as_mut());
    }
    within("the server's stream is cancelled", cancellations.recv())
        .await
        .expect("cancelled");
    connection.stop().await;
}
