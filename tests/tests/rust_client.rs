//! The Rust client against the hubs server: every transport × protocol, calls, handlers,
//! streams both ways, client results, errors, reconnecting after a restart, and a server
//! that closes with an error.

use std::time::Duration;

use futures_util::StreamExt;
use hubs::connection::{ConnectionEvent, ConnectionState, HubConnection, InvokeError, Upload};
use hubs::protocol::Protocol;
use hubs_tests::{COMBINATIONS, interop_server, within};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_and_protocol() {
    let addr = interop_server().await;
    for (transport, protocol) in COMBINATIONS {
        let what = format!("{} + {protocol}", transport.name());
        let connection = HubConnection::builder(format!("http://{addr}/testhub"))
            .transports([transport])
            .protocol(protocol)
            .build();
        let (messages_tx, mut messages) = mpsc::unbounded_channel();
        connection.on("Message", move |(text,): (String,)| {
            let messages_tx = messages_tx.clone();
            async move {
                let _ = messages_tx.send(text);
            }
        });
        connection.on("Result", |(value,): (i64,)| async move {
            Ok::<_, String>(value * 2)
        });
        within(&what, connection.start())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(connection.state(), ConnectionState::Connected);
        assert_eq!(connection.transport(), Some(transport));

        // Calls and results.
        let echoed: Option<String> = within(&what, connection.invoke("Echo", ("héllo",)))
            .await
            .expect("echo");
        assert_eq!(echoed.as_deref(), Some("héllo"), "{what}");
        let name: String = within(&what, connection.invoke("GetActiveTransportName", ()))
            .await
            .expect("name");
        assert_eq!(name, transport.name());
        let id: String = within(&what, connection.invoke("GetCallerConnectionId", ()))
            .await
            .expect("id");
        assert_eq!(Some(id), connection.connection_id());

        // A server-to-client call before the completion.
        let () = within(&what, connection.invoke("InvokeWithString", ("ping",)))
            .await
            .expect("invoke");
        assert_eq!(
            within(&what, messages.recv()).await.as_deref(),
            Some("ping")
        );
        within(&what, connection.send("InvokeWithString", ("sent",)))
            .await
            .expect("send");
        assert_eq!(
            within(&what, messages.recv()).await.as_deref(),
            Some("sent")
        );

        // The server's error text.
        let error = within(&what, connection.invoke::<()>("ThrowException", ("boom",)))
            .await
            .expect_err("fails");
        assert_eq!(
            error.to_string(),
            "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: boom"
        );
        assert!(matches!(error, InvokeError::Server(_)));

        // Streams both ways.
        let items: Vec<String> = within(
            &what,
            connection
                .stream::<String>("Stream", ())
                .await
                .expect("stream")
                .map(|i| i.expect("item"))
                .collect(),
        )
        .await;
        assert_eq!(items, ["a", "b", "c"]);
        let parts = futures_util::stream::iter(["Hello ", "world", "!"]);
        let joined: String = within(
            &what,
            connection.invoke_with_uploads("StreamingConcat", (), vec![Upload::new(parts)]),
        )
        .await
        .expect("concat");
        assert_eq!(joined, "Hello world!");

        // A client result from inside a hub method, answered by the `Result` handler.
        let doubled: i64 = within(&what, connection.invoke("InvokeCaller", (21,)))
            .await
            .expect("client result");
        assert_eq!(doubled, 42);

        // Dropping an infinite stream cancels it: the server calls StreamCanceled.
        let (canceled_tx, mut canceled) = mpsc::unbounded_channel();
        connection.on("StreamCanceled", move |()| {
            let canceled_tx = canceled_tx.clone();
            async move {
                let _ = canceled_tx.send(());
            }
        });
        let infinite = connection
            .stream::<String>("InfiniteStream", ())
            .await
            .expect("stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(infinite);
        assert_eq!(within(&what, canceled.recv()).await, Some(()));

        within(&what, connection.stop()).await;
        assert_eq!(connection.state(), ConnectionState::Disconnected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_negotiation_and_automatic_fallback() {
    let addr = interop_server().await;
    let direct = HubConnection::builder(format!("http://{addr}/testhub"))
        .skip_negotiation()
        .protocol(Protocol::MessagePack)
        .build();
    within("skip", direct.start()).await.expect("starts");
    let echoed: Option<String> = direct.invoke("Echo", ("x",)).await.expect("echo");
    assert_eq!(echoed.as_deref(), Some("x"));
    direct.stop().await;

    // The no-WebSockets hub: JSON lands on SSE, MessagePack on long polling.
    for (protocol, expected) in [
        (Protocol::Json, "ServerSentEvents"),
        (Protocol::MessagePack, "LongPolling"),
    ] {
        let connection = HubConnection::builder(format!("http://{addr}/testhub-nowebsockets"))
            .protocol(protocol)
            .build();
        within("fallback", connection.start())
            .await
            .expect("starts");
        let name: String = connection
            .invoke("GetActiveTransportName", ())
            .await
            .expect("name");
        assert_eq!(name, expected);
        connection.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts() {
    let settings = hubs_examples::interop::Settings {
        keep_alive: Duration::from_secs(1),
        long_poll_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let first = hubs_examples::interop::server(&settings)
        .build()
        .expect("builds");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(first.serve_with_shutdown(listener, async {
        let _ = stop_rx.await;
    }));

    let connection = HubConnection::builder(format!("http://{addr}/testhub"))
        .with_retry_policy(|retries: u32, _elapsed: Duration| {
            (retries < 50).then_some(Duration::from_millis(100))
        })
        .build();
    let mut events = connection.events();
    connection.start().await.expect("starts");
    let before = connection.connection_id();

    // Restart: every connection gets a Close that allows reconnecting, the port goes
    // away for a moment, then a new server takes it.
    let _ = stop_tx.send(());
    let _ = serving.await;
    assert!(matches!(
        within("reconnecting", events.recv()).await,
        Ok(ConnectionEvent::Reconnecting(_))
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebinds the port");
    let second = hubs_examples::interop::server(&settings)
        .build()
        .expect("builds");
    tokio::spawn(second.serve(listener));
    match within("reconnected", events.recv()).await {
        Ok(ConnectionEvent::Reconnected(id)) => assert_ne!(id, before),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    assert_eq!(connection.state(), ConnectionState::Connected);
    let echoed: Option<String> = connection
        .invoke("Echo", ("back",))
        .await
        .expect("works again");
    assert_eq!(echoed.as_deref(), Some("back"));
    connection.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_with_an_error_ends_the_connection_for_good() {
    use hubs::{Context, HubError, Server, hub};

    struct Grumpy;
    #[hub]
    impl Grumpy {
        pub(crate) async fn hang(&self) {
            std::future::pending::<()>().await;
        }
        pub(crate) fn leave(&self, cx: &Context<Self>) {
            cx.abort();
        }
        async fn on_connected(&self, cx: &Context<Self>) -> Result<(), HubError> {
            if cx.request().query("grumpy").is_some() {
                return Err(HubError::new("go away"));
            }
            Ok(())
        }
    }

    // Two slots, so that `Leave` runs while `Hang` waits.
    let options = hubs::HubOptions::default().max_parallel_invocations(2);
    let service = Server::new()
        .hub_with("/grumpy", Grumpy, options)
        .build()
        .expect("builds");
    let addr = hubs_tests::serve(service).await;

    // An error Close without allowReconnect: closed for good, even with reconnect on.
    let connection = HubConnection::builder(format!("http://{addr}/grumpy?grumpy=1"))
        .with_automatic_reconnect()
        .build();
    let mut events = connection.events();
    connection.start().await.expect("the handshake succeeds");
    match within("closed", events.recv()).await {
        Ok(ConnectionEvent::Closed(Some(error))) => {
            assert_eq!(
                error,
                "Connection closed with an error. HubException: go away"
            );
        }
        other => panic!("expected Closed with the error, got {other:?}"),
    }
    assert_eq!(connection.state(), ConnectionState::Disconnected);

    // A pending invocation fails when the server ends the connection.
    let connection = HubConnection::builder(format!("http://{addr}/grumpy"))
        .with_automatic_reconnect()
        .build();
    connection.start().await.expect("starts");
    let hanging = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.invoke::<()>("Hang", ()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    connection.send("Leave", ()).await.expect("sends");
    let error = within("pending call fails", hanging)
        .await
        .expect("task")
        .expect_err("fails");
    assert!(matches!(error, InvokeError::Closed(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_provider_opens_an_authorized_hub_on_every_transport() {
    let addr = interop_server().await;
    let url = format!("http://{addr}/authorizedhub");
    for (transport, protocol) in COMBINATIONS {
        let what = format!("{} + {protocol}", transport.name());
        let connection = HubConnection::builder(url.clone())
            .transports([transport])
            .protocol(protocol)
            .access_token(move || async move {
                let (status, _, token) =
                    hubs_tests::http(addr, "GET", "/generateJwtToken", &[]).await;
                (status == 200).then_some(token)
            })
            .build();
        within(&what, connection.start())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let echoed: String = within(&what, connection.invoke("Echo", ("let in",)))
            .await
            .expect("echo");
        assert_eq!(echoed, "let in", "{what}");
        within(&what, connection.stop()).await;
    }

    let refused = HubConnection::builder(url).build();
    let error = within("no token", refused.start())
        .await
        .expect_err("no token, no connection");
    assert!(
        error.to_string().contains("401"),
        "the error names the status: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_on_the_test_hub_names_the_connections_user() {
    let addr = interop_server().await;
    let (status, _, token) = hubs_tests::http(addr, "GET", "/generateJwtToken?user=zed", &[]).await;
    assert_eq!(status, 200);
    let connection = HubConnection::builder(format!("http://{addr}/testhub"))
        .access_token(move || {
            let token = token.clone();
            async move { Some(token) }
        })
        .build();
    within("start", connection.start()).await.expect("starts");
    let ids: Vec<String> = within("users", connection.invoke("UserConnections", ("zed",)))
        .await
        .expect("user connections");
    assert_eq!(
        ids,
        connection.connection_id().into_iter().collect::<Vec<_>>()
    );
    connection.stop().await;
}
