//! Hub filters in and out, declarative limits, identity, policies and per-user caps,
//! through the Rust client and raw HTTP on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hubs::connection::{HubConnection, InvokeError};
use hubs::protocol::Headers;
use hubs::{
    AuthError, Context, EndpointOptions, HubError, HubOptions, Request, SendError, Server, User,
    auth::PolicyCheck,
    filter::{
        BoxFuture, ConnectionInfo, DispatchError, Dropped, HubFilter, HubInvocation, Next,
        NextHook, OutgoingFilter, OutgoingKind, OutgoingMessage, Reply,
    },
    hub,
};
use hubs_tests::within;
use tokio::sync::mpsc;

type Log = Arc<Mutex<Vec<String>>>;

/// Writes `{name}>` before the rest of the chain and `{name}<` after it.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl HubFilter for Recorder {
    fn invoke(
        &self,
        invocation: HubInvocation,
        next: Next,
    ) -> BoxFuture<Result<Reply, DispatchError>> {
        let (name, log) = (self.name, self.log.clone());
        log.lock().unwrap().push(format!("{name}>"));
        let rest = next.run(invocation);
        Box::pin(async move {
            let outcome = rest.await;
            log.lock().unwrap().push(format!("{name}<"));
            outcome
        })
    }

    fn on_connected(
        &self,
        connection: ConnectionInfo,
        next: NextHook<Result<(), HubError>>,
    ) -> BoxFuture<Result<(), HubError>> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} connected", self.name));
        next.run(connection)
    }

    fn on_disconnected(
        &self,
        connection: ConnectionInfo,
        error: Option<HubError>,
        next: NextHook<()>,
    ) -> BoxFuture<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} disconnected", self.name));
        next.run(connection, error)
    }
}

/// Refuses `Forbidden` outright and shouts `Echo`'s argument.
struct Gate;

impl HubFilter for Gate {
    fn invoke(
        &self,
        mut invocation: HubInvocation,
        next: Next,
    ) -> BoxFuture<Result<Reply, DispatchError>> {
        match invocation.method() {
            "Forbidden" => Box::pin(async { Err(DispatchError::hub("Not through this gate.")) }),
            "Echo" => {
                let text: String = invocation.argument(0).unwrap_or_default();
                let _ = invocation.set_argument(0, &text.to_uppercase());
                next.run(invocation)
            }
            _ => next.run(invocation),
        }
    }
}

/// Numbers what the hub sends in `x-seq`; drops `Secret`.
#[derive(Default)]
struct Numbered(std::sync::atomic::AtomicU64);

impl OutgoingFilter for Numbered {
    fn on_send(&self, message: &mut OutgoingMessage<'_>) -> Result<(), Dropped> {
        if message.target() == Some("Secret") {
            return Err(Dropped("secrets stay on the server".into()));
        }
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let kind = match message.kind() {
            OutgoingKind::Invocation => "invocation",
            OutgoingKind::ClientResult => "client-result",
            OutgoingKind::StreamItem => "stream-item",
            _ => "other",
        };
        message.set_header("x-seq", n.to_string());
        message.set_header("x-kind", kind);
        Ok(())
    }
}

struct Filtered {
    log: Log,
}

#[hub]
impl Filtered {
    pub(crate) fn echo(&self, text: String) -> String {
        self.log.lock().unwrap().push("method".to_owned());
        text
    }

    pub(crate) fn forbidden(&self) -> String {
        "never".to_owned()
    }

    pub(crate) async fn notify(&self, cx: &Context<Self>) -> Result<(), HubError> {
        cx.clients().caller().send("Notice", ("hello",)).await?;
        match cx.clients().caller().send("Secret", ("x",)).await {
            Err(SendError::Dropped(reason)) => Err(HubError::new(format!("dropped: {reason}"))),
            other => Err(HubError::new(format!("not dropped: {other:?}"))),
        }
    }

    pub(crate) async fn ask(&self, cx: &Context<Self>) -> Result<String, HubError> {
        cx.clients().caller().invoke("Tell", ()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_run_in_order_short_circuit_and_change_arguments() {
    let log: Log = Arc::default();
    let options = HubOptions::default()
        .filter(Recorder {
            name: "hub",
            log: log.clone(),
        })
        .filter(Gate)
        .outgoing_filter(Numbered::default());
    // In process: filters are hub behaviour, whatever the transport.
    let server = hubs::testing::TestServer::new(
        Server::new()
            .filter(Recorder {
                name: "server",
                log: log.clone(),
            })
            .hub_with("/filtered", Filtered { log: log.clone() }, options),
    )
    .expect("builds");
    let connection = server.client("/filtered").build();
    let (notices, mut noticed) = mpsc::unbounded_channel();
    connection.on_with_headers("Notice", move |headers: Headers, (text,): (String,)| {
        let notices = notices.clone();
        async move {
            let _ = notices.send((headers, text));
        }
    });
    connection.on_with_headers("Tell", |headers: Headers, ()| async move {
        Ok::<_, String>(format!(
            "told with {}",
            headers.get("x-kind").cloned().unwrap_or_default()
        ))
    });
    within("start", connection.start()).await.expect("starts");
    assert_eq!(
        *log.lock().unwrap(),
        ["server connected", "hub connected"],
        "hook filters, server's first"
    );
    log.lock().unwrap().clear();

    let echoed: String = within("echo", connection.invoke("Echo", ("quiet",)))
        .await
        .expect("echo");
    assert_eq!(echoed, "QUIET", "a filter changed the argument");
    assert_eq!(
        *log.lock().unwrap(),
        ["server>", "hub>", "method", "hub<", "server<"]
    );
    log.lock().unwrap().clear();

    let refused = within("forbidden", connection.invoke::<String>("Forbidden", ()))
        .await
        .expect_err("short-circuited");
    assert_eq!(
        refused.to_string(),
        "An unexpected error occurred invoking 'Forbidden' on the server. HubException: Not through this gate."
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["server>", "hub>", "hub<", "server<"],
        "the method never ran"
    );

    // Outgoing: headers on sends and client results, and a dropped send.
    let error = within("notify", connection.invoke::<()>("Notify", ()))
        .await
        .expect_err("Secret was dropped");
    assert!(
        error
            .to_string()
            .contains("dropped: secrets stay on the server"),
        "{error}"
    );
    let (headers, text) = within("notice", noticed.recv()).await.expect("notice");
    assert_eq!(text, "hello");
    assert_eq!(
        headers.get("x-kind").map(String::as_str),
        Some("invocation")
    );
    assert!(headers.contains_key("x-seq"));
    let told: String = within("ask", connection.invoke("Ask", ()))
        .await
        .expect("told");
    assert_eq!(told, "told with client-result");

    connection.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log.lock().unwrap().clone();
    assert!(
        log.ends_with(&[
            "server disconnected".to_owned(),
            "hub disconnected".to_owned()
        ]),
        "{log:?}"
    );
}

struct Limited;

#[hub]
impl Limited {
    #[hub(limit(rate = "5/min"))]
    pub(crate) fn ping(&self) -> u32 {
        1
    }

    #[hub(limit(rate = "3/min", per = "user"))]
    pub(crate) fn shared(&self) -> u32 {
        1
    }

    #[hub(limit(concurrency = 2))]
    pub(crate) async fn slow(&self) -> u32 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        1
    }
}

async fn count(results: Vec<Result<u32, InvokeError>>, refusal: &str) -> (usize, usize) {
    let mut ok = 0;
    let mut refused = 0;
    for result in results {
        match result {
            Ok(_) => ok += 1,
            Err(InvokeError::Server(text)) if text == refusal => refused += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_concurrency_limits_count_exactly() {
    let options = HubOptions::default()
        .max_parallel_invocations(8)
        .user_id(|request| request.query("user").map(str::to_owned));
    let server =
        hubs::testing::TestServer::new(Server::new().hub_with("/limited", Limited, options))
            .expect("builds");
    let connect = |user: &str| {
        let request = hubs::Request::new(
            format!("/limited?user={user}").parse().expect("uri"),
            Default::default(),
        );
        server.client_with("/limited", request).build()
    };

    // 5 a minute per connection: 8 calls, 5 pass.
    let a = connect("ann");
    within("start", a.start()).await.expect("starts");
    let mut results = Vec::new();
    for _ in 0..8 {
        results.push(within("ping", a.invoke::<u32>("Ping", ())).await);
    }
    let refusal =
        "Failed to invoke 'Ping': rate limit exceeded (at most 5 calls per minute per connection).";
    assert_eq!(count(results, refusal).await, (5, 3));
    // Another connection has its own bucket.
    let b = connect("ann");
    within("start", b.start()).await.expect("starts");
    assert!(within("ping", b.invoke::<u32>("Ping", ())).await.is_ok());

    // 3 a minute per user, across the user's two connections.
    let mut results = Vec::new();
    for connection in [&a, &b, &a, &b, &a] {
        results.push(within("shared", connection.invoke::<u32>("Shared", ())).await);
    }
    let refusal =
        "Failed to invoke 'Shared': rate limit exceeded (at most 3 calls per minute per user).";
    assert_eq!(count(results, refusal).await, (3, 2));
    // Someone else is not held up by ann.
    let c = connect("cid");
    within("start", c.start()).await.expect("starts");
    assert!(
        within("shared", c.invoke::<u32>("Shared", ()))
            .await
            .is_ok()
    );

    // 2 at once per connection: 4 at the same time, 2 pass; afterwards room again.
    let calls = (0..4).map(|_| c.invoke::<u32>("Slow", ()));
    let results = within("slow", futures_util::future::join_all(calls)).await;
    let refusal = "Failed to invoke 'Slow': too many calls at once (at most 2 per connection).";
    assert_eq!(count(results, refusal).await, (2, 2));
    assert!(
        within("slow again", c.invoke::<u32>("Slow", ()))
            .await
            .is_ok()
    );
    for connection in [a, b, c] {
        connection.stop().await;
    }
}

/// Authenticates `X-Test-User: id[:age[:role]]`; `X-Test-User: bad` is a refused credential.
fn header_users(
    request: Request,
) -> impl std::future::Future<Output = Result<Option<User>, AuthError>> {
    let result = match request.header("x-test-user") {
        None => Ok(None),
        Some("bad") => Err(AuthError("bad credential".into())),
        Some(value) => {
            let mut parts = value.split(':');
            let mut user = User::new(parts.next().unwrap_or_default());
            if let Some(age) = parts.next().and_then(|a| a.parse::<u64>().ok()) {
                user = user.with_claim("age", age);
            }
            if let Some(role) = parts.next() {
                user = user.with_role(role);
            }
            Ok(Some(user))
        }
    };
    std::future::ready(result)
}

struct Guarded;

#[hub(authorize)]
impl Guarded {
    pub(crate) fn me(&self, cx: &Context<Self>) -> Option<String> {
        cx.user().and_then(User::id).map(str::to_owned)
    }

    #[hub(authorize(policy = "adults"))]
    pub(crate) fn drink(&self) -> &'static str {
        "cheers"
    }
}

struct Staff;

#[hub(authorize(roles = "staff, admin"))]
impl Staff {
    pub(crate) fn hello(&self) -> &'static str {
        "hello"
    }
}

fn guarded_server() -> Server {
    let adults = |request: PolicyCheck| async move {
        request
            .user
            .claim("age")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|age| age >= 18)
    };
    Server::new()
        .authenticate(header_users)
        .policy("adults", adults)
        .hub("/guarded", Guarded)
        .hub("/staff", Staff)
        .hub_with_endpoint(
            "/capped",
            Guarded,
            HubOptions::default(),
            EndpointOptions::default().max_connections_per_user(2),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_policies_roles_and_per_user_caps() {
    let addr = hubs_tests::serve(guarded_server().build().expect("builds")).await;
    let as_user = |path: &str, user: &str| {
        HubConnection::builder(format!("http://{addr}{path}"))
            .header("x-test-user", user)
            .build()
    };

    // The user reaches the hub; the policy decides per method.
    let adult = as_user("/guarded", "ann:30");
    within("start", adult.start()).await.expect("starts");
    let me: Option<String> = within("me", adult.invoke("Me", ())).await.expect("me");
    assert_eq!(me.as_deref(), Some("ann"));
    let drink: String = within("drink", adult.invoke("Drink", ()))
        .await
        .expect("adult");
    assert_eq!(drink, "cheers");
    let minor = as_user("/guarded", "tim:12");
    within("start", minor.start()).await.expect("starts");
    let refused = within("drink", minor.invoke::<String>("Drink", ()))
        .await
        .expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "Failed to invoke 'Drink' because user is unauthorized"
    );
    let me: Option<String> = within("me", minor.invoke("Me", ()))
        .await
        .expect("still open");
    assert_eq!(me.as_deref(), Some("tim"));

    // Anonymous and refused credentials get 401; a user without the hub's role 403.
    for (status, headers) in [(401, vec![]), (401, vec![("x-test-user", "bad")])] {
        let (got, _, _) = hubs_tests::http(
            addr,
            "POST",
            "/guarded/negotiate?negotiateVersion=1",
            &headers,
        )
        .await;
        assert_eq!(got, status, "{headers:?}");
    }
    let (got, _, _) = hubs_tests::http(
        addr,
        "POST",
        "/staff/negotiate?negotiateVersion=1",
        &[("x-test-user", "bob:40:cook")],
    )
    .await;
    assert_eq!(got, 403, "no staff role");
    let staff = as_user("/staff", "sue:40:staff");
    within("staff", staff.start())
        .await
        .expect("a staff member connects");

    // At most two connections per user on /capped.
    let first = as_user("/capped", "cap:30");
    let second = as_user("/capped", "cap:30");
    within("first", first.start()).await.expect("first");
    within("second", second.start()).await.expect("second");
    let (got, _, body) = hubs_tests::http(
        addr,
        "POST",
        "/capped/negotiate?negotiateVersion=1",
        &[("x-test-user", "cap:30")],
    )
    .await;
    assert_eq!(
        (got, body.as_str()),
        (429, hubs::protocol::wire::TOO_MANY_FOR_USER)
    );
    let other = as_user("/capped", "someone:30");
    within("other user", other.start())
        .await
        .expect("others are not capped");
    first.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = as_user("/capped", "cap:30");
    within("room again", third.start())
        .await
        .expect("a place was given back");
    for connection in [adult, minor, staff, second, other, third] {
        connection.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_requests_must_keep_their_user() {
    let addr = hubs_tests::serve(guarded_server().build().expect("builds")).await;
    let (status, _, body) = hubs_tests::http(
        addr,
        "POST",
        "/guarded/negotiate?negotiateVersion=1",
        &[("x-test-user", "ann:30")],
    )
    .await;
    assert_eq!(status, 200);
    let negotiated: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = negotiated["connectionToken"].as_str().expect("token");
    let path = format!("/guarded?id={token}");
    let (status, _, _) = hubs_tests::http(addr, "GET", &path, &[("x-test-user", "ann:30")]).await;
    assert_eq!(status, 200, "the first poll");
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    let (status, _, _) =
        hubs_tests::http_with_body(addr, "POST", &path, &[("x-test-user", "eve:30")], handshake)
            .await;
    assert_eq!(status, 403, "another user's credential");
    let (status, _, _) =
        hubs_tests::http_with_body(addr, "POST", &path, &[("x-test-user", "ann:30")], handshake)
            .await;
    assert_eq!(status, 200, "the connection's own user");
    let (status, _, _) =
        hubs_tests::http(addr, "DELETE", &path, &[("x-test-user", "ann:30")]).await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_naming_an_unknown_policy_does_not_build() {
    let error = Server::new()
        .hub("/guarded", Guarded)
        .build()
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "hub `{}` requires the policy \"adults\", which is not registered (`Server::policy`)",
            std::any::type_name::<Guarded>()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_connections_see_their_user() {
    let service = Server::new()
        .authenticate(header_users)
        .connection_handler("/raw", |mut connection| async move {
            let user = connection
                .user()
                .and_then(User::id)
                .unwrap_or("nobody")
                .to_owned();
            let _ = connection.send(user).await;
            while connection.recv().await.is_some() {}
        })
        .build()
        .expect("builds");
    let addr = hubs_tests::serve(service).await;
    let (status, _, body) = hubs_tests::http(
        addr,
        "POST",
        "/raw/negotiate?negotiateVersion=1",
        &[("x-test-user", "ray")],
    )
    .await;
    assert_eq!(status, 200);
    let negotiated: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = negotiated["connectionToken"].as_str().expect("token");
    let path = format!("/raw?id={token}");
    let (status, _, _) = hubs_tests::http(addr, "GET", &path, &[("x-test-user", "ray")]).await;
    assert_eq!(status, 200, "first poll");
    let (status, _, body) = hubs_tests::http(addr, "GET", &path, &[("x-test-user", "ray")]).await;
    assert_eq!((status, body.as_str()), (200, "ray"));
}
