//! The server: negotiate, routing, services, hooks, user targets, the hub context, slow
//! clients, and mounting inside an axum application. Services, hooks and targets run in
//! process (`hubs::testing`); the rest over TCP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hubs::protocol::{Completion, HubMessage, Invocation, Outcome, Protocol};
use hubs::testing::TestServer;
use hubs::{Context, HubError, HubOptions, Server, hub};
use hubs_tests::{RawClient, STEP, http, interop_server, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_versions_paths_and_methods() {
    let addr = interop_server().await;

    let (status, head, body) =
        http(addr, "POST", "/testhub/negotiate?negotiateVersion=1", &[]).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["negotiateVersion"], 1);
    let id = json["connectionId"].as_str().expect("id");
    let token = json["connectionToken"].as_str().expect("token");
    assert_eq!(id.len(), 22);
    assert_ne!(id, token);
    assert_eq!(
        json["availableTransports"],
        serde_json::json!([
            {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
            {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
            {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]}
        ])
    );

    let (_, _, body) = http(addr, "POST", "/TestHub/negotiate", &[]).await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["negotiateVersion"], 0);
    assert!(json.get("connectionToken").is_none());

    let (_, _, body) = http(addr, "POST", "/testhub/negotiate?negotiateVersion=x", &[]).await;
    assert_eq!(
        body,
        r#"{"error":"The client requested a non-integer protocol version."}"#
    );

    assert_eq!(http(addr, "GET", "/testhub/negotiate", &[]).await.0, 405);
    assert_eq!(http(addr, "POST", "/nohub/negotiate", &[]).await.0, 404);
    assert_eq!(http(addr, "GET", "/elsewhere", &[]).await.0, 404);
    let (status, _, body) = http(addr, "GET", "/testhub", &[]).await;
    assert_eq!((status, body.as_str()), (400, "Connection ID required"));
    let (status, _, body) = http(addr, "GET", "/testhub?id=nope", &[]).await;
    assert_eq!((status, body.as_str()), (404, "No Connection with that ID"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiated_token_connects_once() {
    let addr = interop_server().await;
    let (_, _, body) = http(addr, "POST", "/testhub/negotiate?negotiateVersion=1", &[]).await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = json["connectionToken"].as_str().expect("token").to_owned();
    let id = json["connectionId"].as_str().expect("id").to_owned();

    let mut client =
        RawClient::connect(addr, &format!("/testhub?id={token}"), Protocol::Json).await;
    client.invoke("GetCallerConnectionId", vec![]).await;
    match client.next_message().await {
        Some(HubMessage::Completion(Completion {
            outcome: Outcome::Result(value),
            ..
        })) => {
            assert_eq!(value.deserialize::<String>().expect("string"), id);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A second WebSocket on the same token is refused; POST on a WebSocket connection too.
    let (status, _, _) = http(
        addr,
        "GET",
        &format!("/testhub?id={token}"),
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(status, 409);
    let (status, _, body) = http(addr, "POST", &format!("/testhub?id={token}"), &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (
            405,
            "POST requests are not allowed for WebSocket connections."
        )
    );
}

struct Greeting(&'static str);
struct Counter(AtomicUsize);

#[derive(Default)]
struct Lobby {
    connected: AtomicUsize,
    disconnected: Arc<AtomicUsize>,
}

#[hub]
impl Lobby {
    pub(crate) fn greet(&self, #[hub(service)] greeting: &Greeting, name: String) -> String {
        format!("{}, {name}", greeting.0)
    }

    pub(crate) fn count(&self, #[hub(service = "visits")] counter: Arc<Counter>) -> usize {
        counter.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn connections(&self) -> usize {
        self.connected.load(Ordering::SeqCst)
    }

    pub(crate) fn whoami(&self, cx: &Context<Self>) -> Option<String> {
        cx.user_identifier().map(str::to_owned)
    }

    pub(crate) async fn tell(
        &self,
        cx: &Context<Self>,
        user: String,
        text: String,
    ) -> Result<(), HubError> {
        cx.clients().user(user).send("Told", (text,)).await?;
        Ok(())
    }

    pub(crate) fn remember(&self, cx: &Context<Self>, value: String) {
        cx.items().insert(value);
    }

    pub(crate) fn recall(&self, cx: Context<Self>) -> Option<String> {
        cx.items().get::<String>()
    }

    pub(crate) fn fail(&self) -> Result<u8, std::io::Error> {
        Err(std::io::Error::other("disk on fire"))
    }

    pub(crate) fn refuse(&self) -> Result<u8, HubError> {
        Err(HubError::new("not today"))
    }

    #[hub(rename = "Leave")]
    pub(crate) fn leave_now(&self, cx: &Context<Self>) {
        cx.abort();
    }

    async fn on_connected(&self, cx: &Context<Self>) -> Result<(), HubError> {
        if cx.request().query("banned").is_some() {
            return Err(HubError::new("banned"));
        }
        self.connected.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn on_disconnected(&self, _cx: &Context<Self>, _error: Option<HubError>) {
        self.disconnected.fetch_add(1, Ordering::SeqCst);
    }
}

fn lobby() -> (TestServer, Arc<AtomicUsize>) {
    let disconnected = Arc::new(AtomicUsize::new(0));
    let hub = Lobby {
        connected: AtomicUsize::new(0),
        disconnected: disconnected.clone(),
    };
    let options = HubOptions::default().user_id(|request| request.query("user").map(str::to_owned));
    let server = Server::new()
        .service(Greeting("Hello"))
        .keyed_service("visits", Counter(AtomicUsize::new(0)))
        .hub_with("/lobby", hub, options);
    (TestServer::new(server).expect("builds"), disconnected)
}

/// A raw client of the lobby in process, opened at `path_and_query`.
async fn lobby_client(server: &TestServer, path_and_query: &str, protocol: Protocol) -> RawClient {
    let request = hubs::Request::new(path_and_query.parse().expect("uri"), Default::default());
    RawClient::in_process_with(server, "/lobby", protocol, request).await
}

async fn call(
    client: &mut RawClient,
    target: &str,
    arguments: Vec<hubs::protocol::Value>,
) -> Outcome {
    let id = client.invoke(target, arguments).await;
    loop {
        match client.next_message().await {
            Some(HubMessage::Completion(completion)) if completion.invocation_id == id => {
                return completion.outcome;
            }
            Some(_) => continue,
            None => panic!("connection closed while waiting for {target}"),
        }
    }
}

fn result<T: serde::de::DeserializeOwned>(outcome: Outcome) -> T {
    match outcome {
        Outcome::Result(value) => value.deserialize().expect("binds"),
        other => panic!("expected a result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_hooks_items_users_and_errors() {
    let (server, disconnected) = lobby();
    let mut ann = lobby_client(&server, "/lobby?user=ann", Protocol::Json).await;
    let mut bob = lobby_client(&server, "/lobby?user=bob", Protocol::MessagePack).await;

    let name = ann.value("Ann");
    assert_eq!(
        result::<String>(call(&mut ann, "Greet", vec![name]).await),
        "Hello, Ann"
    );
    assert_eq!(result::<usize>(call(&mut ann, "Count", vec![]).await), 1);
    assert_eq!(result::<usize>(call(&mut bob, "Count", vec![]).await), 2);
    assert_eq!(
        result::<usize>(call(&mut ann, "Connections", vec![]).await),
        2
    );
    assert_eq!(
        result::<Option<String>>(call(&mut bob, "Whoami", vec![]).await).as_deref(),
        Some("bob")
    );

    let value = ann.value("kept");
    call(&mut ann, "Remember", vec![value]).await;
    assert_eq!(
        result::<Option<String>>(call(&mut ann, "Recall", vec![]).await).as_deref(),
        Some("kept")
    );
    assert_eq!(
        result::<Option<String>>(call(&mut bob, "Recall", vec![]).await),
        None
    );

    let (to, text) = (ann.value("bob"), ann.value("psst"));
    call(&mut ann, "Tell", vec![to, text]).await;
    match bob.next_message().await {
        Some(HubMessage::Invocation(Invocation {
            target,
            arguments,
            invocation_id: None,
            ..
        })) => {
            assert_eq!(target, "Told");
            assert_eq!(
                arguments[0].deserialize::<String>().expect("string"),
                "psst"
            );
        }
        other => panic!("expected Told, got {other:?}"),
    }

    // Detailed errors are off: other errors are generic, HubError passes its message.
    assert_eq!(
        call(&mut ann, "Fail", vec![]).await,
        Outcome::Error("An unexpected error occurred invoking 'Fail' on the server.".into())
    );
    assert_eq!(
        call(&mut ann, "Refuse", vec![]).await,
        Outcome::Error(
            "An unexpected error occurred invoking 'Refuse' on the server. HubException: not today"
                .into()
        )
    );

    // The hub context reaches clients from outside any hub method.
    let context = server.hub_context::<Lobby>().expect("mounted");
    context
        .clients()
        .all()
        .send("Broadcast", (7,))
        .await
        .expect("sends");
    for client in [&mut ann, &mut bob] {
        match client.next_message().await {
            Some(HubMessage::Invocation(Invocation { target, .. })) => {
                assert_eq!(target, "Broadcast")
            }
            other => panic!("expected Broadcast, got {other:?}"),
        }
    }

    // Abort from a hub method: Close without error or reconnect, then on_disconnected.
    ann.invoke("Leave", vec![]).await;
    match ann.next_message().await {
        Some(HubMessage::Close(close)) => {
            assert_eq!(close.error, None);
            assert!(!close.allow_reconnect);
        }
        other => panic!("expected Close, got {other:?}"),
    }
    assert!(ann.closed().await);
    tokio::time::timeout(STEP, async {
        while disconnected.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("on_disconnected ran");

    // An on_connected error closes the connection with the error and no reconnect.
    let mut banned = lobby_client(&server, "/lobby?banned=1", Protocol::Json).await;
    match banned.next_message().await {
        Some(HubMessage::Close(close)) => {
            assert_eq!(
                close.error.as_deref(),
                Some("Connection closed with an error. HubException: banned")
            );
            assert!(!close.allow_reconnect);
        }
        other => panic!("expected Close, got {other:?}"),
    }
}

#[test]
fn a_missing_service_fails_the_build() {
    let error = match Server::new().hub("/lobby", Lobby::default()).build() {
        Err(error) => error.to_string(),
        Ok(_) => panic!("built without its services"),
    };
    assert!(error.contains("Greeting"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_slows_only_itself() {
    let options = HubOptions::default()
        .outbound_budget(hubs_tests::small_budget())
        .send_timeout(Duration::from_millis(500));
    let service = Server::new()
        .hub_with("/testhub", hubs_examples::interop::TestHub, options)
        .build()
        .expect("builds");
    let addr = serve(service).await;

    // The stuck client completes its handshake, then never reads again.
    let mut stuck = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let mut sender = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let mut listener = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let payload = "p".repeat(16 * 1024);
    let rounds = 400;
    // The listener reads as it should, concurrently.
    let listening = tokio::spawn(async move {
        let mut received = 0;
        while received < rounds {
            match listener.next_message().await {
                Some(HubMessage::Invocation(Invocation { target, .. }))
                    if target == "AllMessage" =>
                {
                    received += 1
                }
                Some(_) => {}
                None => panic!("listener closed after {received}"),
            }
        }
        received
    });
    for _ in 0..rounds {
        let value = sender.value(&payload);
        let id = sender.invoke("SendToAll", vec![value]).await;
        // The sender sees its own broadcast and its completion; the stuck client may delay
        // a completion by up to the send timeout, never longer.
        let mut done = false;
        while !done {
            match tokio::time::timeout(Duration::from_secs(5), sender.next_message()).await {
                Ok(Some(HubMessage::Completion(c))) if c.invocation_id == id => done = true,
                Ok(Some(_)) => {}
                other => panic!("sender stalled: {other:?}"),
            }
        }
    }
    // The listener got every broadcast.
    assert_eq!(listening.await.expect("listener task"), rounds);
    // The server gave up on the stuck client: once it reads again, it finds the socket
    // closed after what was queued before the timeout.
    assert!(stuck.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_inside_an_axum_app() {
    let hubs = hubs_examples::interop::server(&Default::default())
        .build()
        .expect("builds");
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback_service(hubs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    assert_eq!(http(addr, "GET", "/health", &[]).await.2, "ok");
    let (status, _, body) = http(addr, "POST", "/testhub/negotiate?negotiateVersion=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    let mut client = RawClient::connect(addr, "/testhub", Protocol::MessagePack).await;
    let value = client.value("through axum");
    assert_eq!(
        result::<String>(call(&mut client, "Echo", vec![value]).await),
        "through axum"
    );
}
