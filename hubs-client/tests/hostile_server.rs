//! The client against hostile or broken servers: a tiny hand-written HTTP/1.1 server on
//! 127.0.0.1 that negotiates properly, then answers polls, event streams and the handshake
//! the wrong way. The client must fail with the right error, soon, without polling in a
//! hot loop or buffering without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubs_client::{ConnectionEvent, HandshakeError, HubConnection, StartError};
use hubs_protocol::TransportKind;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request, as the hostile server read it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    /// How many requests with this method came before it.
    nth: usize,
}

/// How the hostile server answers one request.
enum Answer {
    /// A whole response.
    Whole {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A 200 response whose body starts with these bytes and then stays open, silent.
    Open {
        content_type: &'static str,
        start: Vec<u8>,
    },
    /// A 200 response whose body never ends: `start`, then `repeat` again and again.
    Endless {
        content_type: &'static str,
        start: &'static [u8],
        repeat: &'static [u8],
    },
}

impl Answer {
    fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::Whole {
            status: 200,
            content_type: "text/plain",
            body: body.into(),
        }
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// The hostile server: where it listens, and every request it read.
struct Hostile {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Hostile {
    /// Serves `answer` on 127.0.0.1, port 0; negotiate is answered properly, offering
    /// only `transport`.
    async fn start(
        transport: &'static str,
        answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
    ) -> Self {
        Self::answering_all(move |request: &Seen| {
            if request.path.contains("/negotiate") {
                return Answer::ok(negotiate(transport));
            }
            answer(request)
        })
        .await
    }

    /// Serves `answer` on 127.0.0.1, port 0, for every request (negotiate included).
    async fn answering_all(answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let handler: Handler = Arc::new(answer);
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (handler, record, counts) = (handler.clone(), record.clone(), counts.clone());
                tokio::spawn(serve(socket, handler, record, counts));
            }
        });
        Self {
            url: format!("http://{addr}/hub"),
            seen,
        }
    }

    /// The polls (and event-stream GETs) it received.
    fn gets(&self) -> usize {
        let seen = self.seen.lock().expect("lock");
        seen.iter().filter(|s| s.method == "GET").count()
    }
}

fn negotiate(transport: &str) -> String {
    format!(
        r#"{{"negotiateVersion":1,"connectionId":"c1","connectionToken":"t1","availableTransports":[{{"transport":"{transport}","transferFormats":["Text","Binary"]}}]}}"#
    )
}

/// Serves one TCP connection: requests one after another (keep-alive), until an answer
/// that keeps the body open or the client goes away.
async fn serve(
    socket: TcpStream,
    handler: Handler,
    record: Arc<Mutex<Vec<Seen>>>,
    counts: Arc<[AtomicUsize; 2]>,
) {
    let mut socket = BufReader::new(socket);
    loop {
        let mut request_line = String::new();
        if socket.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if socket.read_exact(&mut body).await.is_err() {
            return;
        }
        let nth = counts[usize::from(method != "GET")].fetch_add(1, Ordering::SeqCst);
        let request = Seen { method, path, nth };
        record.lock().expect("lock").push(request.clone());
        let socket = socket.get_mut();
        match handler(&request) {
            Answer::Whole {
                status,
                content_type,
                body,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                if socket.write_all(head.as_bytes()).await.is_err()
                    || socket.write_all(&body).await.is_err()
                {
                    return;
                }
            }
            Answer::Open {
                content_type,
                start,
            } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&start).await;
                // Silent until the client goes away.
                let mut rest = Vec::new();
                let _ = socket.read_to_end(&mut rest).await;
                return;
            }
            Answer::Endless {
                content_type,
                start,
                repeat,
            } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(start).await;
                while socket.write_all(repeat).await.is_ok() {}
                return;
            }
        }
    }
}

/// Answers the requests of a long-polling client: the first poll (which activates the
/// connection) and POSTs with nothing, the later polls with `poll`.
fn long_polling(poll: impl Fn() -> Answer + Send + Sync + 'static) -> impl Fn(&Seen) -> Answer {
    move |request: &Seen| match request.method.as_str() {
        "GET" if request.nth > 0 => poll(),
        _ => Answer::ok(""),
    }
}

fn client(
    server: &Hostile,
    transport: TransportKind,
    handshake_timeout: Duration,
) -> HubConnection {
    HubConnection::builder(&server.url)
        .transports([transport])
        .handshake_timeout(handshake_timeout)
        .build()
}

/// Starts `connection`, which must fail or succeed within 5 s (a hostile answer is not
/// read until a timeout), and returns what the start came to.
async fn start_fast(connection: &HubConnection) -> Result<(), StartError> {
    let began = Instant::now();
    let started = tokio::time::timeout(Duration::from_secs(10), connection.start())
        .await
        .expect("the start ends");
    let took = began.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    started
}

#[tokio::test]
async fn empty_polls_are_spaced_out_until_the_handshake_times_out() {
    let server = Hostile::start("LongPolling", long_polling(|| Answer::ok(""))).await;
    let connection = client(&server, TransportKind::LongPolling, Duration::from_secs(1));
    let started = connection.start().await;
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::TimedOut(after))) if *after == Duration::from_secs(1)
        ),
        "{started:?}"
    );
    assert_eq!(
        started.map_err(|e| e.to_string()),
        Err("the server did not answer the handshake within 1s".to_owned())
    );
    // Without pacing, a server that answers at once is polled thousands of times a second.
    let polls = server.gets();
    assert!(polls < 50, "{polls} polls in one second");
}

#[tokio::test]
async fn polls_answered_with_a_web_page_fail_the_handshake_as_malformed() {
    let page = format!("<html><body>{}</body></html>", "not a hub ".repeat(100));
    let server = Hostile::start(
        "LongPolling",
        long_polling(move || Answer::Whole {
            status: 200,
            content_type: "text/html",
            body: page.clone().into_bytes(),
        }),
    )
    .await;
    let connection = client(&server, TransportKind::LongPolling, Duration::from_secs(10));
    let started = start_fast(&connection).await;
    // 32 KiB without a record separator is not a handshake answer: about 33 pages.
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::Malformed(text))) if text.contains("maximum message size")
        ),
        "{started:?}"
    );
    let polls = server.gets();
    assert!(polls < 50, "{polls} polls");
}

#[tokio::test]
async fn a_hub_message_instead_of_the_handshake_answer_is_malformed() {
    let server = Hostile::start(
        "LongPolling",
        long_polling(|| Answer::ok("{\"type\":6}\x1e")),
    )
    .await;
    let connection = client(&server, TransportKind::LongPolling, Duration::from_secs(10));
    let started = connection.start().await;
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::Malformed(text)))
                if text.contains("Expected a handshake response from the server.")
        ),
        "{started:?}"
    );
}

#[tokio::test]
async fn a_poll_that_never_ends_is_not_buffered_whole() {
    let server = Hostile::start(
        "LongPolling",
        long_polling(|| Answer::Endless {
            content_type: "text/plain",
            start: b"",
            repeat: b"garbage garbage garbage ",
        }),
    )
    .await;
    let connection = client(&server, TransportKind::LongPolling, Duration::from_secs(10));
    let started = start_fast(&connection).await;
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::Malformed(_)))
        ),
        "{started:?}"
    );
}

#[tokio::test]
async fn a_negotiate_answer_that_never_ends_is_refused() {
    let server = Hostile::answering_all(|_| Answer::Endless {
        content_type: "application/json",
        start: b"{\"connectionId\":\"",
        repeat: b"xxxxxxxxxxxxxxxx",
    })
    .await;
    let connection = client(&server, TransportKind::LongPolling, Duration::from_secs(10));
    let started = start_fast(&connection).await;
    assert!(
        matches!(
            &started,
            Err(StartError::Negotiate(text)) if text.contains("longer than 65536 bytes")
        ),
        "{started:?}"
    );
}

#[tokio::test]
async fn a_server_that_ends_the_polls_closes_the_handshake() {
    let server = Hostile::start(
        "LongPolling",
        long_polling(|| Answer::Whole {
            status: 204,
            content_type: "text/plain",
            body: Vec::new(),
        }),
    )
    .await;
    let connection = client(&server, TransportKind::LongPolling, Duration::from_secs(10));
    let started = connection.start().await;
    assert!(
        matches!(&started, Err(StartError::Handshake(HandshakeError::Closed))),
        "{started:?}"
    );
}

/// Answers event-stream GETs with `content_type` and `start`, kept open; POSTs with 200.
fn event_stream(
    content_type: &'static str,
    start: &'static [u8],
) -> impl Fn(&Seen) -> Answer + Send + Sync + 'static {
    move |request: &Seen| match request.method.as_str() {
        "GET" => Answer::Open {
            content_type,
            start: start.to_vec(),
        },
        _ => Answer::ok(""),
    }
}

#[tokio::test]
async fn a_refused_handshake_carries_the_servers_error() {
    let server = Hostile::start(
        "ServerSentEvents",
        event_stream("text/event-stream", b"data: {\"error\":\"nope\"}\x1e\n\n"),
    )
    .await;
    let connection = client(
        &server,
        TransportKind::ServerSentEvents,
        Duration::from_secs(10),
    );
    let started = connection.start().await;
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::Refused(error))) if error == "nope"
        ),
        "{started:?}"
    );
    assert_eq!(
        started.map_err(|e| e.to_string()),
        Err("Server returned handshake error: nope".to_owned())
    );
}

#[tokio::test]
async fn a_handshake_never_answered_times_out() {
    let server = Hostile::start(
        "ServerSentEvents",
        event_stream("text/event-stream", b": nothing to say\n\n"),
    )
    .await;
    let connection = client(
        &server,
        TransportKind::ServerSentEvents,
        Duration::from_millis(300),
    );
    let started = connection.start().await;
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::TimedOut(_)))
        ),
        "{started:?}"
    );
}

#[tokio::test]
async fn an_endless_event_line_is_not_buffered_whole() {
    let server = Hostile::start("ServerSentEvents", |request: &Seen| {
        match request.method.as_str() {
            "GET" => Answer::Endless {
                content_type: "text/event-stream",
                start: b"data: ",
                repeat: b"no line end in sight ",
            },
            _ => Answer::ok(""),
        }
    })
    .await;
    let connection = client(
        &server,
        TransportKind::ServerSentEvents,
        Duration::from_secs(10),
    );
    let started = start_fast(&connection).await;
    assert!(
        matches!(
            &started,
            Err(StartError::Handshake(HandshakeError::Malformed(_)))
        ),
        "{started:?}"
    );
}

#[tokio::test]
async fn an_event_stream_served_as_plain_text_fails_at_start() {
    // Even with a handshake answer inside: it is not an event stream.
    let server = Hostile::start(
        "ServerSentEvents",
        event_stream("text/plain", b"data: {}\x1e\n\n"),
    )
    .await;
    let connection = client(
        &server,
        TransportKind::ServerSentEvents,
        Duration::from_secs(10),
    );
    let started = connection.start().await;
    assert!(
        matches!(
            &started,
            Err(StartError::Transport(text))
                if text.contains("content type 'text/plain', not 'text/event-stream'")
        ),
        "{started:?}"
    );
}

#[tokio::test]
async fn messages_that_come_with_the_handshake_answer_are_read_at_once() {
    let server = Hostile::start(
        "ServerSentEvents",
        event_stream(
            "text/event-stream",
            b"data: {}\x1e{\"type\":1,\"target\":\"hello\",\"arguments\":[\"hi\"]}\x1e\n\n",
        ),
    )
    .await;
    let connection = client(
        &server,
        TransportKind::ServerSentEvents,
        Duration::from_secs(10),
    );
    let (said, heard) = tokio::sync::oneshot::channel();
    let said = Mutex::new(Some(said));
    connection.on("hello", move |(text,): (String,)| {
        if let Some(said) = said.lock().expect("lock").take() {
            let _ = said.send(text);
        }
        async {}
    });
    connection.start().await.expect("the handshake succeeds");
    let heard = tokio::time::timeout(Duration::from_secs(5), heard).await;
    assert!(matches!(&heard, Ok(Ok(text)) if text == "hi"), "{heard:?}");
}

#[tokio::test]
async fn a_message_over_the_size_limit_ends_the_connection() {
    let message = format!(
        "{{\"type\":1,\"target\":\"big\",\"arguments\":[\"{}\"]}}\x1e",
        "x".repeat(2048)
    );
    let start: &'static [u8] = format!("data: {{}}\x1e\n\ndata: {message}\n\n")
        .into_bytes()
        .leak();
    let server = Hostile::start("ServerSentEvents", event_stream("text/event-stream", start)).await;
    let connection = HubConnection::builder(&server.url)
        .transports([TransportKind::ServerSentEvents])
        .max_message_size(Some(1024))
        .build();
    let mut events = connection.events();
    connection.start().await.expect("the handshake succeeds");
    let closed = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
    assert!(
        matches!(
            &closed,
            Ok(Ok(ConnectionEvent::Closed(Some(reason)))) if reason.contains("maximum message size of 1024B")
        ),
        "{closed:?}"
    );
}

#[tokio::test]
async fn a_retry_policy_that_waits_forever_does_not_panic() {
    // The handshake is answered, then the event stream ends: the connection is lost.
    let server = Hostile::start("ServerSentEvents", |request: &Seen| {
        match request.method.as_str() {
            "GET" => Answer::Whole {
                status: 200,
                content_type: "text/event-stream",
                body: b"data: {}\x1e\n\n".to_vec(),
            },
            _ => Answer::ok(""),
        }
    })
    .await;
    let connection = HubConnection::builder(&server.url)
        .transports([TransportKind::ServerSentEvents])
        .with_retry_policy(|_: u32, _: Duration| Some(Duration::MAX))
        .build();
    let mut events = connection.events();
    connection.start().await.expect("the handshake succeeds");
    let lost = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
    assert!(
        matches!(&lost, Ok(Ok(ConnectionEvent::Reconnecting(_)))),
        "{lost:?}"
    );
    // Waiting "forever" for the retry: the connection still answers, and stops.
    connection.stop().await;
    let closed = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
    assert!(
        matches!(&closed, Ok(Ok(ConnectionEvent::Closed(None)))),
        "{closed:?}"
    );
}
