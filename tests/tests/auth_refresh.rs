//! Authentication refresh on the server (ASP.NET Core 11, the official 11.0 client): a live
//! connection takes a fresh credential from `POST {hub}/refresh`, its close-on-expiry timer
//! follows it, later calls see its claims and the hub's hook runs; another user, or the
//! hub's own rule, is refused and changes nothing; long polling asks a client that can
//! refresh to do so (409) and keeps the close at expiry for the others; and the hubs Rust
//! client does all of it from its side. The official client's side is in
//! `tests/interop/js/refresh.test.mjs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubs::auth::AuthenticationRefresh;
use hubs::protocol::{HubMessage, Protocol};
use hubs::{AuthError, Context, EndpointOptions, HubOptions, Request, Server, User, hub};
use hubs_tests::{RawClient, http, http_with_body, serve};

/// Tokens of this test: `user.role+role.expiry-unix-ms` (`-` for no role).
fn token(user: &str, roles: &[&str], lifetime: Duration) -> String {
    let expiry = (SystemTime::now() + lifetime)
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let roles = if roles.is_empty() {
        "-".to_owned()
    } else {
        roles.join("+")
    };
    format!("{user}.{roles}.{expiry}")
}

async fn authenticate(request: Request) -> Result<Option<User>, AuthError> {
    let Some(token) = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .or_else(|| request.query("access_token"))
    else {
        return Ok(None);
    };
    let mut parts = token.split('.');
    let (Some(user), Some(roles), Some(expiry)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError("malformed token".into()));
    };
    let expiry =
        UNIX_EPOCH + Duration::from_millis(expiry.parse().map_err(|_| AuthError("expiry".into()))?);
    if expiry <= SystemTime::now() {
        return Err(AuthError("expired".into()));
    }
    let mut found = User::new(user).with_expiry(expiry);
    for role in roles.split('+').filter(|role| *role != "-") {
        found = found.with_role(role);
    }
    Ok(Some(found))
}

/// A hub behind a credential, whose `Secret` needs the role `admin`.
struct Vault {
    refreshed: Arc<AtomicUsize>,
}

#[hub(authorize)]
impl Vault {
    pub(crate) fn roles(&self, cx: &Context<Self>) -> Vec<String> {
        cx.user()
            .map(|user| user.roles().to_vec())
            .unwrap_or_default()
    }

    #[hub(authorize(role = "admin"))]
    pub(crate) fn secret(&self) -> &'static str {
        "open sesame"
    }

    /// `Number(n)` to connection `id`.
    pub(crate) async fn send_to(
        &self,
        cx: &Context<Self>,
        id: String,
        n: u64,
    ) -> Result<(), hubs::HubError> {
        cx.clients().client(id).send("Number", (n,)).await?;
        Ok(())
    }

    pub(crate) async fn on_authentication_refreshed(&self, cx: &Context<Self>) {
        assert!(cx.user().is_some(), "the hook sees the new user");
        self.refreshed.fetch_add(1, Ordering::SeqCst);
    }
}

/// The vault at `/vault` (refresh on, closing at expiry, a 300 ms long poll) and at
/// `/plain` (refresh off), on a free port.
async fn vault(refresh: AuthenticationRefresh) -> (SocketAddr, Arc<AtomicUsize>) {
    vault_polling(refresh, Duration::from_millis(300)).await
}

/// [`vault`] with long polls held up to `poll_timeout`.
async fn vault_polling(
    refresh: AuthenticationRefresh,
    poll_timeout: Duration,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let refreshed = Arc::new(AtomicUsize::new(0));
    let options = HubOptions::default().close_on_authentication_expiration(true);
    let endpoint = || {
        EndpointOptions::default()
            .authenticate(authenticate)
            .long_poll_timeout(poll_timeout)
    };
    let service = Server::new()
        .hub_with_endpoint(
            "/vault",
            Vault {
                refreshed: refreshed.clone(),
            },
            options.clone().authentication_refresh(refresh),
            endpoint(),
        )
        .hub_with_endpoint(
            "/plain",
            Vault {
                refreshed: refreshed.clone(),
            },
            options,
            endpoint(),
        )
        .build()
        .expect("builds");
    (serve(service).await, refreshed)
}

/// Negotiates `path` with `token`: the connection token.
async fn negotiated(addr: SocketAddr, path: &str, token: &str) -> (String, serde_json::Value) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(
        addr,
        "POST",
        &format!("{path}/negotiate?negotiateVersion=1"),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    (
        json["connectionToken"]
            .as_str()
            .expect("a token")
            .to_owned(),
        json,
    )
}

/// `POST {path}/refresh` with `token` for connection `id` (in the 11.0 client's header).
async fn refresh(addr: SocketAddr, path: &str, id: &str, token: &str) -> (u16, serde_json::Value) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(
        addr,
        "POST",
        &format!("{path}/refresh"),
        &[
            ("Authorization", &bearer),
            ("X-SignalR-Connection-Token", id),
        ],
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

async fn call(client: &mut RawClient, method: &str) -> HubMessage {
    let id = client.invoke(method, Vec::new()).await;
    loop {
        match client.next_message().await.expect("an answer") {
            HubMessage::Completion(completion) if completion.invocation_id == id => {
                return HubMessage::Completion(completion);
            }
            _ => continue,
        }
    }
}

fn result_of(message: &HubMessage) -> String {
    match message {
        HubMessage::Completion(completion) => format!("{:?}", completion.outcome),
        other => format!("{other:?}"),
    }
}

/// Waits for the connection's Close; when it came, since `since`.
async fn close_after(client: &mut RawClient, since: Instant) -> (Duration, String, bool) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next_message())
            .await
            .expect("a close within 10 s")
            .expect("a close before the socket ends")
        {
            HubMessage::Close(close) => {
                return (
                    since.elapsed(),
                    close.error.unwrap_or_default(),
                    close.allow_reconnect,
                );
            }
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_moves_the_expiry_and_later_calls_see_the_new_claims() {
    let (addr, refreshed) = vault(AuthenticationRefresh::new()).await;
    let first = token("ann", &[], Duration::from_millis(1500));
    let (id, negotiate) = negotiated(addr, "/vault", &first).await;
    assert!(
        matches!(negotiate["tokenLifetimeSeconds"].as_u64(), Some(0..=1)),
        "negotiate tells the lifetime: {negotiate}"
    );
    let started = Instant::now();
    let mut client = RawClient::connect(
        addr,
        &format!("/vault?id={id}&access_token={first}"),
        Protocol::Json,
    )
    .await;
    assert!(result_of(&call(&mut client, "Roles").await).contains("[]"));
    assert!(
        result_of(&call(&mut client, "Secret").await).contains("unauthorized"),
        "no admin yet"
    );

    let (status, answer) = refresh(
        addr,
        "/vault",
        &id,
        &token("ann", &["admin"], Duration::from_secs(4)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        matches!(answer["tokenLifetimeSeconds"].as_u64(), Some(3..=4)),
        "{answer}"
    );
    assert_eq!(refreshed.load(Ordering::SeqCst), 1, "the hub's hook ran");
    assert!(result_of(&call(&mut client, "Roles").await).contains("admin"));
    assert!(result_of(&call(&mut client, "Secret").await).contains("open sesame"));

    let (after, error, allow_reconnect) = close_after(&mut client, started).await;
    assert!(
        after >= Duration::from_millis(3500),
        "the close followed the refreshed expiry, not the first (closed after {after:?})"
    );
    assert!(error.contains("expired"), "{error}");
    assert!(!allow_reconnect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_or_the_hubs_rule_is_refused_and_changes_nothing() {
    let rule = AuthenticationRefresh::new().accept(|_, new| !new.is_in_role("banned"));
    let (addr, refreshed) = vault(rule).await;
    let first = token("ann", &[], Duration::from_millis(1500));
    let (id, _) = negotiated(addr, "/vault", &first).await;
    let started = Instant::now();
    let mut client = RawClient::connect(
        addr,
        &format!("/vault?id={id}&access_token={first}"),
        Protocol::Json,
    )
    .await;

    let long = Duration::from_secs(30);
    for (who, roles) in [("bob", &["admin"][..]), ("ann", &["admin", "banned"][..])] {
        let (status, answer) = refresh(addr, "/vault", &id, &token(who, roles, long)).await;
        assert_eq!(status, 403, "{who} {roles:?}: {answer}");
        assert_eq!(answer["error"], "permission_change_rejected");
    }
    assert_eq!(refreshed.load(Ordering::SeqCst), 0);
    assert!(
        result_of(&call(&mut client, "Roles").await).contains("[]"),
        "unchanged"
    );

    // The rest of the error table.
    let fresh = token("ann", &[], long);
    let bearer = format!("Bearer {fresh}");
    let (status, _, body) = http(
        addr,
        "POST",
        "/plain/refresh",
        &[
            ("Authorization", &bearer),
            ("X-SignalR-Connection-Token", &id),
        ],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"refresh_disabled"}"#)
    );
    let (status, _, _) = http(addr, "GET", "/vault/refresh", &[("Authorization", &bearer)]).await;
    assert_eq!(status, 405);
    let (status, _, body) = http(
        addr,
        "POST",
        "/vault/refresh",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"error":"missing_connection_token"}"#)
    );
    let (status, answer) = refresh(addr, "/vault", &id, "ann.-.1").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, answer) = refresh(addr, "/vault", "no-such-connection", &fresh).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("connection_not_found"))
    );

    // Refused refreshes left the first credential in place: the connection closes at its
    // expiry.
    let (after, error, _) = close_after(&mut client, started).await;
    assert!(
        after < Duration::from_millis(2500),
        "closed at the first expiry: {after:?}"
    );
    assert!(error.contains("expired"), "{error}");

    // The documented form of the connection token, `id`, on another connection.
    let (other, _) = negotiated(addr, "/vault", &fresh).await;
    let _open = RawClient::connect(
        addr,
        &format!("/vault?id={other}&access_token={fresh}"),
        Protocol::Json,
    )
    .await;
    let (status, _, body) = http_with_body(
        addr,
        "POST",
        &format!("/vault/refresh?id={other}"),
        &[("Authorization", &bearer)],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        refreshed.load(Ordering::SeqCst),
        0,
        "the same credential again is no refresh"
    );
    let renewed = format!("Bearer {}", token("ann", &["admin"], long));
    let (status, _, body) = http_with_body(
        addr,
        "POST",
        &format!("/vault/refresh?id={other}"),
        &[("Authorization", &renewed)],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshed.load(Ordering::SeqCst), 1);
}

/// Long polling, by hand: the handshake, then polls. `agent` is the client's user agent.
struct Poller {
    addr: SocketAddr,
    id: String,
    connection_id: String,
    token: String,
    agent: &'static str,
}

impl Poller {
    async fn start(addr: SocketAddr, token: String, agent: &'static str) -> Self {
        let (id, negotiate) = negotiated(addr, "/vault", &token).await;
        let connection_id = negotiate["connectionId"]
            .as_str()
            .expect("an id")
            .to_owned();
        let poller = Self {
            addr,
            id,
            connection_id,
            token,
            agent,
        };
        assert_eq!(
            poller.poll().await.0,
            200,
            "the first poll starts long polling"
        );
        let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
        assert_eq!(poller.post(handshake).await, 200);
        let (status, body) = poller.poll().await;
        assert_eq!(status, 200);
        assert!(
            body.starts_with("{}\u{1e}"),
            "the handshake answer: {body:?}"
        );
        poller
    }

    async fn poll(&self) -> (u16, String) {
        let (status, _, body) = self.send("GET", &[]).await;
        (status, body)
    }

    async fn post(&self, body: &[u8]) -> u16 {
        self.send("POST", body).await.0
    }

    /// A request on the connection, with its token and user agent.
    async fn send(&self, method: &str, body: &[u8]) -> (u16, String, String) {
        let bearer = format!("Bearer {}", self.token);
        http_with_body(
            self.addr,
            method,
            &format!("/vault?id={}", self.id),
            &[("Authorization", &bearer), ("User-Agent", self.agent)],
            body,
        )
        .await
    }
}

/// An 11.0 client's poll held at its credential's expiry is answered then (not at the
/// 30 s poll timeout): its next poll is told to refresh, and nothing sent to it meanwhile
/// reaches it before it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_held_at_expiry_ends_there() {
    let (addr, _) = vault_polling(AuthenticationRefresh::new(), Duration::from_secs(30)).await;
    let lifetime = Duration::from_millis(1200);
    let mut eleven = Poller::start(addr, token("ann", &[], lifetime), ELEVEN).await;
    let held = Instant::now();
    let (status, body) = eleven.poll().await;
    assert_eq!((status, body.as_str()), (200, ""), "answered empty");
    assert!(
        held.elapsed() < Duration::from_secs(10),
        "at the expiry, not the 30 s poll timeout: {:?}",
        held.elapsed()
    );
    // Sent after the expiry: kept for the connection until it refreshes.
    let sender = token("sender", &[], Duration::from_secs(30));
    let (id, _) = negotiated(addr, "/vault", &sender).await;
    let mut sender_client = RawClient::connect(
        addr,
        &format!("/vault?id={id}&access_token={sender}"),
        Protocol::Json,
    )
    .await;
    let target = sender_client.value(eleven.connection_id.clone());
    let seven = sender_client.value(7u64);
    sender_client.invoke("SendTo", vec![target, seven]).await;
    let (status, _) = eleven.poll().await;
    assert_eq!(status, 409, "told to refresh, with nothing delivered");
    eleven.token = token("ann", &[], Duration::from_secs(30));
    assert_eq!(
        refresh(addr, "/vault", &eleven.id, &eleven.token).await.0,
        200
    );
    let (status, body) = eleven.poll().await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\"target\":\"Number\"") && body.contains("[7]"),
        "kept, then delivered: {body}"
    );
}

const ELEVEN: &str = "Microsoft SignalR/11.0 (11.0.0; Linux; NodeJS; v20.19.2)";
const TEN: &str = "Microsoft SignalR/10.0 (10.0.11; Linux; NodeJS; v20.19.2)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_asks_a_client_that_refreshes_and_closes_the_others_at_expiry() {
    let (addr, _) = vault(AuthenticationRefresh::new()).await;
    let lifetime = Duration::from_millis(1200);
    let mut eleven = Poller::start(addr, token("ann", &[], lifetime), ELEVEN).await;
    let ten = Poller::start(addr, token("bob", &[], lifetime), TEN).await;
    // The older client polls on, as clients do: the poll in flight at the expiry carries
    // the Close.
    let ten = tokio::spawn(async move {
        let mut seen = String::new();
        for _ in 0..40 {
            let (status, body) = ten.poll().await;
            seen.push_str(&format!("[{status}] {body}"));
            if status != 200 || body.contains("\"type\":7") {
                break;
            }
        }
        seen
    });
    tokio::time::sleep(lifetime + Duration::from_millis(300)).await;

    let (status, body) = eleven.poll().await;
    assert_eq!(
        (status, body.as_str()),
        (409, r#"{"error":"authentication_refresh_required"}"#),
        "an expired poll from an 11.0 client is asked to refresh"
    );
    eleven.token = token("ann", &["admin"], Duration::from_secs(30));
    let (status, answer) = refresh(addr, "/vault", &eleven.id, &eleven.token).await;
    assert_eq!(status, 200, "{answer}");
    let invocation =
        b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Secret\",\"arguments\":[]}\x1e";
    assert_eq!(eleven.post(invocation).await, 200);
    let mut answers = String::new();
    for _ in 0..5 {
        let (status, body) = eleven.poll().await;
        assert_eq!(status, 200, "polls go on after the refresh: {body}");
        answers.push_str(&body);
        if answers.contains("open sesame") {
            break;
        }
    }
    assert!(
        answers.contains("open sesame"),
        "the refreshed claims: {answers}"
    );

    // A 10.0 client would end its connection on a 409: its close at expiry stays.
    let closed = ten.await.expect("the older client's polls");
    assert!(
        closed.contains("\"type\":7") && closed.contains("expired"),
        "the older client got its Close at expiry: {closed}"
    );
}

mod rust_client {
    use std::sync::Mutex;

    use hubs::TransportKind;
    use hubs::connection::{ConnectionEvent, ConnectionState, HubConnection, RefreshError};
    use tokio::sync::mpsc;

    use super::*;

    /// Tokens of `user` that live `lifetime`, with the role `admin` once `admin` is set.
    fn provider(
        user: &'static str,
        lifetime: Duration,
        admin: Arc<std::sync::atomic::AtomicBool>,
    ) -> impl Fn() -> std::future::Ready<Option<String>> + Send + Sync + 'static {
        move || {
            let roles: &[&str] = if admin.load(Ordering::SeqCst) {
                &["admin"]
            } else {
                &[]
            };
            std::future::ready(Some(token(user, roles, lifetime)))
        }
    }

    /// One client on `transport` with `protocol` whose 1.5 s tokens refresh themselves:
    /// for 6 s (four lifetimes) it stays connected with its id, gets every number a sender
    /// sends it in order, and its calls see the role its latest token has.
    async fn refreshes_itself(addr: SocketAddr, transport: TransportKind, protocol: Protocol) {
        let what = format!("{transport:?}/{protocol}");
        let admin = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = HubConnection::builder(format!("http://{addr}/vault"))
            .transports([transport])
            .protocol(protocol)
            .access_token(provider("ann", Duration::from_millis(1500), admin.clone()))
            .with_authentication_refresh()
            .build();
        let (numbers_tx, mut numbers) = mpsc::unbounded_channel();
        client.on("Number", move |(n,): (u64,)| {
            let _ = numbers_tx.send(n);
            async {}
        });
        let mut events = client.events();
        client
            .start()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let id = client.connection_id().expect("an id");

        let sender = HubConnection::builder(format!("http://{addr}/vault"))
            .access_token(|| {
                std::future::ready(Some(token("sender", &[], Duration::from_secs(60))))
            })
            .build();
        sender.start().await.expect("the sender starts");
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(6) {
            sender
                .invoke::<()>("SendTo", (id.clone(), sent))
                .await
                .unwrap_or_else(|e| panic!("{what}: send {sent}: {e}"));
            sent += 1;
            if sent == 30 {
                admin.store(true, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            client.state(),
            ConnectionState::Connected,
            "{what}: still connected"
        );
        assert_eq!(
            client.connection_id().as_deref(),
            Some(id.as_str()),
            "{what}: same id"
        );
        let mut refreshed = 0;
        while let Ok(event) = events.try_recv() {
            match event {
                ConnectionEvent::AuthenticationRefreshed(_) => refreshed += 1,
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(
            refreshed >= 3,
            "{what}: {refreshed} refreshes in 6 s of 1.5 s tokens"
        );
        for expected in 0..sent {
            let n = within(&what, numbers.recv()).await.expect("numbers");
            assert_eq!(n, expected, "{what}: every number once, in order");
        }
        let secret: String = client
            .invoke("Secret", ())
            .await
            .unwrap_or_else(|e| panic!("{what}: the refreshed role opens Secret: {e}"));
        assert_eq!(secret, "open sesame");
        client.stop().await;
        sender.stop().await;
    }

    async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), future)
            .await
            .unwrap_or_else(|_| panic!("timed out: {what}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rust_client_refreshes_on_every_transport_and_protocol() {
        let (addr, _) = vault(AuthenticationRefresh::new()).await;
        let runs = [
            (TransportKind::WebSockets, Protocol::Json),
            (TransportKind::WebSockets, Protocol::MessagePack),
            (TransportKind::ServerSentEvents, Protocol::Json),
            (TransportKind::LongPolling, Protocol::Json),
            (TransportKind::LongPolling, Protocol::MessagePack),
        ]
        .map(|(transport, protocol)| tokio::spawn(refreshes_itself(addr, transport, protocol)));
        for run in runs {
            run.await.expect("a run");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rust_client_is_refused_another_user_and_a_hub_that_did_not_opt_in() {
        let (addr, _) = vault(AuthenticationRefresh::new()).await;
        let user = Arc::new(Mutex::new("ann"));
        let tokens = {
            let user = user.clone();
            move || {
                let who = *user.lock().expect("user");
                std::future::ready(Some(token(who, &[], Duration::from_millis(1500))))
            }
        };
        let client = HubConnection::builder(format!("http://{addr}/vault"))
            .access_token(tokens.clone())
            .build();
        let mut events = client.events();
        client.start().await.expect("starts");
        *user.lock().expect("user") = "bob";
        match client.refresh_authentication().await {
            Err(RefreshError::Status { status: 403, error }) => {
                assert_eq!(error.as_deref(), Some("permission_change_rejected"));
            }
            other => panic!("another user's token: {other:?}"),
        }
        assert_eq!(
            client.state(),
            ConnectionState::Connected,
            "the connection stays"
        );
        // Unchanged: it closes when ann's token expires.
        loop {
            match within("the close at expiry", events.recv())
                .await
                .expect("events")
            {
                ConnectionEvent::Closed(reason) => {
                    assert!(reason.unwrap_or_default().contains("expired"));
                    break;
                }
                _ => continue,
            }
        }

        let plain = HubConnection::builder(format!("http://{addr}/plain"))
            .access_token(tokens)
            .build();
        *user.lock().expect("user") = "ann";
        plain.start().await.expect("starts");
        match plain.refresh_authentication().await {
            Err(RefreshError::Status { status: 404, error }) => {
                assert_eq!(error.as_deref(), Some("refresh_disabled"));
            }
            other => panic!("a hub that did not opt in: {other:?}"),
        }
        plain.stop().await;
    }

    /// Long polling without the timer: the server's 409 after expiry makes the client
    /// refresh, and numbers sent across it all arrive.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rust_client_refreshes_when_a_long_poll_asks() {
        let (addr, refreshed) = vault(AuthenticationRefresh::new()).await;
        let admin = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = HubConnection::builder(format!("http://{addr}/vault"))
            .transports([TransportKind::LongPolling])
            .access_token(provider("ann", Duration::from_millis(1200), admin))
            .build();
        let (numbers_tx, mut numbers) = mpsc::unbounded_channel();
        client.on("Number", move |(n,): (u64,)| {
            let _ = numbers_tx.send(n);
            async {}
        });
        client.start().await.expect("starts");
        let id = client.connection_id().expect("an id");
        let sender = HubConnection::builder(format!("http://{addr}/vault"))
            .access_token(|| {
                std::future::ready(Some(token("sender", &[], Duration::from_secs(60))))
            })
            .build();
        sender.start().await.expect("the sender starts");
        for n in 0..40u64 {
            sender
                .invoke::<()>("SendTo", (id.clone(), n))
                .await
                .expect("sends");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for expected in 0..40 {
            assert_eq!(within("numbers", numbers.recv()).await, Some(expected));
        }
        assert_eq!(
            client.state(),
            ConnectionState::Connected,
            "past three expiries"
        );
        assert!(
            refreshed.load(Ordering::SeqCst) >= 2,
            "the polls after expiry asked, and the client refreshed"
        );
        client.stop().await;
        sender.stop().await;
    }
}
