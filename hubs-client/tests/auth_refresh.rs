//! Authentication refresh (`@microsoft/signalr` 11) against a small fake hub written with
//! hyper: negotiate with `tokenLifetimeSeconds`, `POST {hub}/refresh`, long polls that ask
//! for a refresh with 409 `authentication_refresh_required`, and 401s that make the client
//! ask its token provider again.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hubs_client::{
    ConnectionEvent, ConnectionState, Connector, Duplex, HubConnection, RefreshError, StartError,
};
use hubs_protocol::TransportKind;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::time::Instant;

/// How long a test waits for something that happens at once (on a real clock).
const PATIENCE: Duration = Duration::from_secs(10);

/// The connection token the fake negotiates.
const CONNECTION_TOKEN: &str = "conn-token-1";

/// A request, as the fake read it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    /// Path and query.
    target: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn bearer(&self) -> Option<&str> {
        self.header("authorization")
    }

    fn is_refresh(&self) -> bool {
        self.target.starts_with("/hub/refresh")
    }

    /// A poll, a send or the DELETE (not negotiate, not a refresh).
    fn is_transport(&self) -> bool {
        self.target.starts_with("/hub?")
    }
}

/// How the fake answers a poll after the handshake.
enum Poll {
    /// At once.
    Now(u16, &'static str),
    /// Held until [`Fake::release`], then 200 with nothing.
    Hold,
}

/// What the fake says.
struct Script {
    /// `tokenLifetimeSeconds` in the negotiate answer, as raw JSON.
    lifetime: Option<&'static str>,
    /// The answer to refresh `n` (from 0).
    refresh: Box<dyn Fn(usize) -> (u16, &'static str) + Send + Sync>,
    /// The answer to poll `n` after the one that carries the handshake answer (from 0).
    poll: Box<dyn Fn(usize) -> Poll + Send + Sync>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            lifetime: None,
            refresh: Box::new(|_| (200, "{}")),
            poll: Box::new(|_| Poll::Hold),
        }
    }
}

struct State {
    script: Script,
    seen: Mutex<Vec<Seen>>,
    changed: watch::Sender<usize>,
    release: Notify,
    /// The only token polls, sends and the DELETE are accepted with (any, when `None`);
    /// others get a 401.
    valid: Mutex<Option<String>>,
    polls: AtomicUsize,
    refreshes: AtomicUsize,
}

/// The fake hub, on 127.0.0.1.
struct Fake {
    url: String,
    state: Arc<State>,
}

impl Fake {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State {
            script,
            seen: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
            release: Notify::new(),
            valid: Mutex::new(None),
            polls: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/hub?tenant=7"),
            state,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    fn refreshes(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_refresh).collect()
    }

    /// Answers the polls held so far.
    fn release(&self) {
        self.state.release.notify_waiters();
    }

    /// Accepts only `token` on polls, sends and the DELETE from now on.
    fn accept_only(&self, token: &str) {
        *self.state.valid.lock().expect("lock") = Some(token.to_owned());
    }

    /// Waits (at most `within`) until the requests seen satisfy `done`.
    async fn wait_for(&self, within: Duration, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let mut changed = self.state.changed.subscribe();
        let waited = tokio::time::timeout(within, async {
            loop {
                let seen = self.seen();
                if done(&seen) {
                    return seen;
                }
                if changed.changed().await.is_err() {
                    return seen;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("not seen in time; seen: {:#?}", self.seen()))
    }
}

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("value"));
    response
}

fn negotiate(lifetime: Option<&str>) -> String {
    let lifetime = lifetime
        .map(|l| format!(r#","tokenLifetimeSeconds":{l}"#))
        .unwrap_or_default();
    format!(
        r#"{{"negotiateVersion":1,"connectionId":"c1","connectionToken":"{CONNECTION_TOKEN}","availableTransports":[{{"transport":"LongPolling","transferFormats":["Text","Binary"]}}]{lifetime}}}"#
    )
}

async fn answer(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    // Registered before the request is recorded, so that a release seen after it
    // answers it.
    let released = state.release.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    state.seen.lock().expect("lock").push(seen.clone());
    state.changed.send_modify(|n| *n += 1);

    if seen.target.starts_with("/hub/negotiate") {
        return Ok(reply(200, negotiate(state.script.lifetime)));
    }
    if seen.is_refresh() {
        let n = state.refreshes.fetch_add(1, Ordering::SeqCst);
        let (status, body) = (state.script.refresh)(n);
        return Ok(reply(status, body));
    }
    let valid = state.valid.lock().expect("lock").clone();
    if let Some(valid) = valid
        && seen.bearer() != Some(&format!("Bearer {valid}"))
    {
        return Ok(reply(401, ""));
    }
    if seen.method != Method::GET {
        return Ok(reply(200, ""));
    }
    match state.polls.fetch_add(1, Ordering::SeqCst) {
        // The first poll activates the connection; the second brings the handshake answer.
        0 => Ok(reply(200, "")),
        1 => Ok(reply(200, "{}\x1e")),
        n => match (state.script.poll)(n - 2) {
            Poll::Now(status, body) => Ok(reply(status, body)),
            Poll::Hold => {
                released.await;
                Ok(reply(200, ""))
            }
        },
    }
}

/// A long-polling client of `fake` whose token provider hands out `tok-1`, `tok-2`…
fn client(fake: &Fake) -> (hubs_client::HubConnectionBuilder, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let builder = HubConnection::builder(&fake.url)
        .transports([TransportKind::LongPolling])
        .header("x-app", "yes")
        .access_token(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Some(format!("tok-{n}")) }
        });
    (builder, calls)
}

async fn next_event(
    events: &mut broadcast::Receiver<ConnectionEvent>,
    within: Duration,
) -> ConnectionEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
        .expect("an event")
}

/// The sends (POSTs to the connection) seen, the handshake's first.
fn sends(seen: &[Seen]) -> Vec<Seen> {
    seen.iter()
        .filter(|s| s.is_transport() && s.method == Method::POST)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_refresh_posts_the_official_request_and_adopts_its_token() {
    let fake = Fake::start(Script {
        refresh: Box::new(|_| (200, r#"{"tokenLifetimeSeconds":120,"connectionId":"c1"}"#)),
        ..Script::default()
    })
    .await;
    let (builder, calls) = client(&fake);
    let connection = builder.build();
    let mut events = connection.events();
    connection.start().await.expect("start");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let refreshed = connection.refresh_authentication().await;
    assert!(
        matches!(refreshed, Ok(Some(lifetime)) if lifetime == Duration::from_secs(120)),
        "{refreshed:?}"
    );
    assert_eq!(
        next_event(&mut events, PATIENCE).await,
        ConnectionEvent::AuthenticationRefreshed(Some(Duration::from_secs(120)))
    );

    let refreshes = fake.refreshes();
    let [refresh] = refreshes.as_slice() else {
        panic!("{refreshes:#?}")
    };
    assert_eq!(refresh.method, Method::POST);
    // The original URL's path with /refresh, its query as it was, no `id`.
    assert_eq!(refresh.target, "/hub/refresh?tenant=7");
    // A new token from the provider, not the one in use.
    assert_eq!(refresh.bearer(), Some("Bearer tok-2"));
    assert_eq!(
        refresh.header("x-signalr-connection-token"),
        Some(CONNECTION_TOKEN)
    );
    assert_eq!(refresh.header("x-app"), Some("yes"));
    assert_eq!(refresh.header("x-requested-with"), Some("XMLHttpRequest"));
    assert!(
        refresh
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("Microsoft SignalR/")),
        "{refresh:?}"
    );
    assert!(refresh.body.is_empty(), "{refresh:?}");
    assert_eq!(refresh.header("content-type"), None);
    assert!(
        matches!(refresh.header("content-length"), None | Some("0")),
        "{refresh:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Later sends and polls carry the token that refreshed.
    connection.send("Echo", ("hi",)).await.expect("send");
    let seen = fake.wait_for(PATIENCE, |seen| sends(seen).len() == 2).await;
    assert_eq!(sends(&seen)[0].bearer(), Some("Bearer tok-1"));
    assert_eq!(sends(&seen)[1].bearer(), Some("Bearer tok-2"));
    let polls_before = seen.iter().filter(|s| s.method == Method::GET).count();
    fake.release();
    let seen = fake
        .wait_for(PATIENCE, |seen| {
            seen.iter().filter(|s| s.method == Method::GET).count() > polls_before
        })
        .await;
    let last_poll = seen
        .iter()
        .rfind(|s| s.method == Method::GET)
        .expect("a poll");
    assert_eq!(last_poll.bearer(), Some("Bearer tok-2"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    connection.stop().await;
}

#[tokio::test]
async fn refresh_answers_map_to_results_and_events() {
    let answers: &'static [(u16, &'static str)] = &[
        (200, "{}"),
        (200, "refreshed"),
        (403, r#"{"error":"permission_change_rejected"}"#),
        (401, r#"{"error":"invalid_token"}"#),
        (204, ""),
        (
            200,
            r#"{"accessToken":"from-the-server","tokenLifetimeSeconds":"60"}"#,
        ),
    ];
    let fake = Fake::start(Script {
        refresh: Box::new(move |n| answers[n]),
        ..Script::default()
    })
    .await;
    let (builder, _) = client(&fake);
    let connection = builder.build();
    let mut events = connection.events();
    connection.start().await.expect("start");

    // 200 `{}`: refreshed, no lifetime.
    assert!(matches!(
        connection.refresh_authentication().await,
        Ok(None)
    ));
    assert_eq!(
        next_event(&mut events, PATIENCE).await,
        ConnectionEvent::AuthenticationRefreshed(None)
    );

    // 200 that is not JSON: an error.
    let failed = connection.refresh_authentication().await;
    assert!(
        matches!(&failed, Err(RefreshError::InvalidResponse(_))),
        "{failed:?}"
    );
    assert!(matches!(
        next_event(&mut events, PATIENCE).await,
        ConnectionEvent::AuthenticationRefreshFailed(_)
    ));

    // 403 with a code: the status and the code.
    let failed = connection.refresh_authentication().await;
    assert!(
        matches!(
            &failed,
            Err(RefreshError::Status { status: 403, error: Some(code) }) if code == "permission_change_rejected"
        ),
        "{failed:?}"
    );
    let text = "Unexpected status code returned from authentication refresh '403' (permission_change_rejected)";
    assert_eq!(failed.map_err(|e| e.to_string()), Err(text.to_owned()));
    assert_eq!(
        next_event(&mut events, PATIENCE).await,
        ConnectionEvent::AuthenticationRefreshFailed(text.to_owned())
    );

    // 401: not sent again.
    let failed = connection.refresh_authentication().await;
    assert!(
        matches!(
            &failed,
            Err(RefreshError::Status { status: 401, error: Some(code) }) if code == "invalid_token"
        ),
        "{failed:?}"
    );
    assert_eq!(fake.refreshes().len(), 4);

    // Only exactly 200 is a success.
    let failed = connection.refresh_authentication().await;
    assert!(
        matches!(
            &failed,
            Err(RefreshError::Status {
                status: 204,
                error: None
            })
        ),
        "{failed:?}"
    );

    // The failures left the connection open, with the token of the last success.
    assert_eq!(connection.state(), ConnectionState::Connected);
    connection.send("Echo", ("a",)).await.expect("send");
    let seen = fake.wait_for(PATIENCE, |seen| sends(seen).len() == 2).await;
    assert_eq!(sends(&seen)[1].bearer(), Some("Bearer tok-2"));

    // A token the server hands out is the one used from then on; a lifetime that is not
    // a number is none.
    assert!(matches!(
        connection.refresh_authentication().await,
        Ok(None)
    ));
    connection.send("Echo", ("b",)).await.expect("send");
    let seen = fake.wait_for(PATIENCE, |seen| sends(seen).len() == 3).await;
    assert_eq!(sends(&seen)[2].bearer(), Some("Bearer from-the-server"));
    assert_eq!(fake.refreshes().len(), 6);
    connection.stop().await;
}

/// A server in the same process: answers the handshake, then stays silent.
struct InProcess;

impl Connector for InProcess {
    fn open(&self) -> Pin<Box<dyn Future<Output = Result<Duplex, StartError>> + Send + 'static>> {
        Box::pin(async {
            let (to_server, mut from_client) = mpsc::channel::<Bytes>(16);
            let (to_client, from_server) = mpsc::channel(16);
            tokio::spawn(async move {
                let _ = from_client.recv().await;
                let _ = to_client.send(Bytes::from_static(b"{}\x1e")).await;
                while from_client.recv().await.is_some() {}
            });
            Ok(Duplex {
                to_server,
                from_server,
                connection_id: None,
            })
        })
    }
}

#[tokio::test]
async fn only_a_connected_negotiated_connection_refreshes() {
    let connection = HubConnection::builder("http://127.0.0.1:9/hub").build();
    assert!(matches!(
        connection.refresh_authentication().await,
        Err(RefreshError::NotConnected)
    ));

    let connection = HubConnection::builder("in-process")
        .connector(InProcess)
        .build();
    connection.start().await.expect("start");
    assert!(matches!(
        connection.refresh_authentication().await,
        Err(RefreshError::NotHttp)
    ));
    connection.stop().await;
    assert!(matches!(
        connection.refresh_authentication().await,
        Err(RefreshError::NotConnected)
    ));
}

#[tokio::test]
async fn the_timer_refreshes_before_expiry_rearms_and_does_not_retry_a_failure() {
    let fake = Fake::start(Script {
        lifetime: Some("1000"),
        refresh: Box::new(|n| match n {
            0 => (200, r#"{"tokenLifetimeSeconds":3600}"#),
            _ => (403, r#"{"error":"permission_change_rejected"}"#),
        }),
        ..Script::default()
    })
    .await;
    let (builder, _) = client(&fake);
    let connection = builder
        .with_authentication_refresh()
        .refresh_before_expiration(Duration::from_secs(600))
        .build();
    let mut events = connection.events();
    connection.start().await.expect("start");
    // From here on the clock only moves when everything waits on it.
    tokio::time::pause();
    let started = Instant::now();
    let far = Duration::from_secs(100_000);

    // 1000 s is at most twice 600 s: halfway, at 500 s.
    assert_eq!(
        next_event(&mut events, far).await,
        ConnectionEvent::AuthenticationRefreshed(Some(Duration::from_secs(3600)))
    );
    // Armed again from the new lifetime: 3600 - 600 s later.
    assert!(matches!(
        next_event(&mut events, far).await,
        ConnectionEvent::AuthenticationRefreshFailed(_)
    ));
    let refreshes = fake.refreshes();
    assert_eq!(refreshes.len(), 2);
    let first = refreshes[0].at.duration_since(started);
    let second = refreshes[1].at.duration_since(refreshes[0].at);
    assert!(
        first >= Duration::from_secs(499) && first <= Duration::from_secs(501),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_secs(2999) && second <= Duration::from_secs(3001),
        "{second:?}"
    );

    // A failure is not tried again, and the connection stays open.
    tokio::time::sleep(Duration::from_secs(10_000)).await;
    assert_eq!(fake.refreshes().len(), 2);
    assert_eq!(connection.state(), ConnectionState::Connected);
    assert!(matches!(
        events.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
}

#[tokio::test]
async fn without_the_option_there_is_no_timer() {
    let fake = Fake::start(Script {
        lifetime: Some("10"),
        ..Script::default()
    })
    .await;
    let (builder, _) = client(&fake);
    let connection = builder.build();
    connection.start().await.expect("start");
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(1000)).await;
    assert!(fake.refreshes().is_empty());
    assert_eq!(connection.state(), ConnectionState::Connected);
}

const REFRESH_REQUIRED: &str = r#"{"error":"authentication_refresh_required"}"#;

#[tokio::test]
async fn a_poll_that_asks_for_a_refresh_refreshes_and_polls_again() {
    let fake = Fake::start(Script {
        refresh: Box::new(|_| (200, r#"{"tokenLifetimeSeconds":60}"#)),
        poll: Box::new(|n| match n {
            0 => Poll::Now(409, REFRESH_REQUIRED),
            1 => Poll::Now(
                200,
                "{\"type\":1,\"target\":\"hello\",\"arguments\":[\"again\"]}\x1e",
            ),
            _ => Poll::Hold,
        }),
        ..Script::default()
    })
    .await;
    let (builder, calls) = client(&fake);
    let connection = builder.build();
    let (said, heard) = mpsc::unbounded_channel();
    connection.on("hello", move |(text,): (String,)| {
        let _ = said.send(text);
        async {}
    });
    let mut events = connection.events();
    connection.start().await.expect("start");
    let mut heard = heard;
    let text = tokio::time::timeout(PATIENCE, heard.recv()).await;
    assert!(
        matches!(&text, Ok(Some(text)) if text == "again"),
        "{text:?}"
    );

    let seen = fake.seen();
    let refresh_at = seen.iter().position(Seen::is_refresh).expect("a refresh");
    assert_eq!(seen.iter().filter(|s| s.is_refresh()).count(), 1);
    assert_eq!(seen[refresh_at].bearer(), Some("Bearer tok-2"));
    // The poll after the refresh carries its token.
    let next_poll = seen[refresh_at..]
        .iter()
        .find(|s| s.method == Method::GET)
        .expect("a poll after the refresh");
    assert_eq!(next_poll.bearer(), Some("Bearer tok-2"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // As the official client: no event for this refresh.
    assert_eq!(connection.state(), ConnectionState::Connected);
    assert!(matches!(
        events.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
    connection.stop().await;
}

/// Starts a client of `fake`, and returns why it closed.
async fn closed_with(fake: &Fake) -> Option<String> {
    let (builder, _) = client(fake);
    let connection = builder.build();
    let mut events = connection.events();
    connection.start().await.expect("start");
    match next_event(&mut events, PATIENCE).await {
        ConnectionEvent::Closed(reason) => reason,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_second_409_in_a_row_closes_the_connection() {
    let fake = Fake::start(Script {
        poll: Box::new(|n| match n {
            0 | 1 => Poll::Now(409, REFRESH_REQUIRED),
            _ => Poll::Hold,
        }),
        ..Script::default()
    })
    .await;
    assert_eq!(
        closed_with(&fake).await.as_deref(),
        Some("Conflict: Status code '409'")
    );
    assert_eq!(fake.refreshes().len(), 1);
}

#[tokio::test]
async fn a_failed_refresh_after_a_409_closes_the_connection_with_its_error() {
    let fake = Fake::start(Script {
        refresh: Box::new(|_| (401, r#"{"error":"invalid_token"}"#)),
        poll: Box::new(|n| match n {
            0 => Poll::Now(409, REFRESH_REQUIRED),
            _ => Poll::Hold,
        }),
        ..Script::default()
    })
    .await;
    assert_eq!(
        closed_with(&fake).await.as_deref(),
        Some("Unexpected status code returned from authentication refresh '401' (invalid_token)")
    );
    assert_eq!(fake.refreshes().len(), 1);
}

#[tokio::test]
async fn another_409_keeps_its_handling() {
    let fake = Fake::start(Script {
        poll: Box::new(|n| match n {
            0 => Poll::Now(409, r#"{"error":"something_else"}"#),
            _ => Poll::Hold,
        }),
        ..Script::default()
    })
    .await;
    assert_eq!(closed_with(&fake).await, None);
    assert!(fake.refreshes().is_empty());
}

#[tokio::test]
async fn a_401_asks_the_provider_again_and_sends_once_more() {
    let fake = Fake::start(Script::default()).await;
    let (builder, calls) = client(&fake);
    let connection = builder.build();
    let mut events = connection.events();
    connection.start().await.expect("start");
    let on_tok =
        |token: &'static str| move |s: &Seen| s.is_transport() && s.bearer() == Some(token);

    // A poll: the held one comes back, the next one (tok-1) gets a 401, and the same poll
    // goes again with a new token.
    fake.accept_only("tok-2");
    fake.release();
    let seen = fake
        .wait_for(PATIENCE, |seen| {
            seen.iter()
                .any(|s| s.method == Method::GET && on_tok("Bearer tok-2")(s))
        })
        .await;
    let polls: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::GET).collect();
    let [.., refused, again] = polls.as_slice() else {
        panic!("{polls:#?}")
    };
    assert_eq!(refused.bearer(), Some("Bearer tok-1"));
    assert_eq!(again.bearer(), Some("Bearer tok-2"));
    assert_eq!(refused.target, again.target);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A send: the same body again, with a new token.
    fake.accept_only("tok-3");
    connection.send("Echo", ("once",)).await.expect("send");
    let seen = fake.wait_for(PATIENCE, |seen| sends(seen).len() == 3).await;
    let sent = sends(&seen);
    assert_eq!(sent[1].bearer(), Some("Bearer tok-2"));
    assert_eq!(sent[2].bearer(), Some("Bearer tok-3"));
    assert_eq!(sent[1].body, sent[2].body);
    assert!(!sent[1].body.is_empty());
    assert_eq!(connection.state(), ConnectionState::Connected);

    // Only once: a second 401 ends the connection; its DELETE gets the same treatment.
    fake.accept_only("never");
    connection.send("Echo", ("twice",)).await.expect("send");
    assert!(matches!(
        next_event(&mut events, PATIENCE).await,
        ConnectionEvent::Closed(_)
    ));
    let seen = fake
        .wait_for(PATIENCE, |seen| {
            seen.iter().filter(|s| s.method == Method::DELETE).count() == 2
        })
        .await;
    let sent = sends(&seen);
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[3].bearer(), Some("Bearer tok-3"));
    assert_eq!(sent[4].bearer(), Some("Bearer tok-4"));
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::DELETE).collect();
    assert_eq!(deletes[0].bearer(), Some("Bearer tok-4"));
    assert_eq!(deletes[1].bearer(), Some("Bearer tok-5"));
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}
