//! Fixtures shared by the hubs test suites: servers on 127.0.0.1, raw WebSocket clients
//! that speak the hub protocol frame by frame, and a bare HTTP request helper.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hubs::HubService;
use hubs::protocol::{HandshakeRequest, HubMessage, Invocation, Protocol, Value};
use hubs::testing::{RawLink, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Guards every await against hangs.
pub const STEP: Duration = Duration::from_secs(10);

/// Every transport × protocol the Rust client can use (MessagePack does not travel over
/// Server-Sent Events).
pub const COMBINATIONS: [(hubs::TransportKind, Protocol); 5] = [
    (hubs::TransportKind::WebSockets, Protocol::Json),
    (hubs::TransportKind::WebSockets, Protocol::MessagePack),
    (hubs::TransportKind::ServerSentEvents, Protocol::Json),
    (hubs::TransportKind::LongPolling, Protocol::Json),
    (hubs::TransportKind::LongPolling, Protocol::MessagePack),
];

/// Awaits `future` for at most [`STEP`]; panics naming `what` when it takes longer.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Serves `service` on a free 127.0.0.1 port; the server stops when the runtime does.
pub async fn serve(service: HubService) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(service.serve(listener));
    addr
}

/// The interop hubs with a 1 s keep-alive, in process (`hubs::testing`): for tests of hub
/// behaviour that need no transport.
pub fn interop_in_process() -> TestServer {
    let settings = hubs_examples::interop::Settings {
        keep_alive: Duration::from_secs(1),
        ..Default::default()
    };
    TestServer::new(hubs_examples::interop::server(&settings)).expect("builds")
}

/// The interop application (hubs in an axum router) with a 1 s keep-alive, on a free port.
pub async fn interop_server() -> SocketAddr {
    let settings = hubs_examples::interop::Settings {
        keep_alive: Duration::from_secs(1),
        long_poll_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let app = hubs_examples::interop::app(&settings).expect("builds");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(hubs::serve(listener, app, hubs::ServeOptions::default()));
    addr
}

/// A raw WebSocket client speaking the hub protocol.
pub struct RawClient {
    link: Link,
    protocol: Protocol,
    decoder: hubs::protocol::MessageDecoder,
    next_id: u64,
}

impl RawClient {
    /// Connects to `path` without negotiating and sends nothing yet.
    pub async fn connect_raw(addr: SocketAddr, path: &str, protocol: Protocol) -> Self {
        let url = format!("ws://{addr}{path}");
        let (socket, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connects");
        Self::over(Link::Socket(Box::new(socket)), protocol)
    }

    fn over(link: Link, protocol: Protocol) -> Self {
        Self {
            link,
            protocol,
            decoder: protocol.decoder().with_max_message_size(None),
            next_id: 0,
        }
    }

    /// Connects and completes the handshake.
    pub async fn connect(addr: SocketAddr, path: &str, protocol: Protocol) -> Self {
        Self::handshake(Self::connect_raw(addr, path, protocol).await).await
    }

    /// Connects to `path` on `server` in the same process (`hubs::testing`: the real
    /// connection core, no TCP) and completes the handshake.
    pub async fn in_process(server: &TestServer, path: &str, protocol: Protocol) -> Self {
        Self::in_process_with(server, path, protocol, hubs::Request::default()).await
    }

    /// As [`in_process`](Self::in_process), the connection carrying `request` (its user,
    /// query and headers).
    pub async fn in_process_with(
        server: &TestServer,
        path: &str,
        protocol: Protocol,
        request: hubs::Request,
    ) -> Self {
        let link = server.raw(path, request);
        Self::handshake(Self::over(Link::InProcess(link), protocol)).await
    }

    async fn handshake(mut client: Self) -> Self {
        let mut handshake = Vec::new();
        HandshakeRequest::new(client.protocol.name(), 1).encode(&mut handshake);
        client.send_text(handshake).await;
        let response = client.next_frame().await.expect("handshake response");
        assert_eq!(response, b"{}\x1e", "handshake response");
        client
    }

    /// Sends bytes in a text frame.
    pub async fn send_text(&mut self, bytes: impl Into<Vec<u8>>) {
        match &mut self.link {
            Link::Socket(socket) => {
                let text = String::from_utf8(bytes.into()).expect("utf-8");
                socket.send(Message::Text(text.into())).await.expect("send");
            }
            Link::InProcess(link) => link.send(bytes.into()).await.expect("send"),
        }
    }

    /// Sends bytes in a binary frame.
    pub async fn send_binary(&mut self, bytes: impl Into<Vec<u8>>) {
        match &mut self.link {
            Link::Socket(socket) => socket
                .send(Message::Binary(bytes.into().into()))
                .await
                .expect("send"),
            Link::InProcess(link) => link.send(bytes.into()).await.expect("send"),
        }
    }

    /// Sends a hub message in the connection's protocol.
    pub async fn send(&mut self, message: &HubMessage) {
        let mut out = Vec::new();
        self.protocol.encode(message, &mut out).expect("encodes");
        match self.protocol {
            Protocol::Json => self.send_text(out).await,
            Protocol::MessagePack => self.send_binary(out).await,
        }
    }

    /// Invokes `target` with already-encoded JSON/MessagePack arguments, returning the id.
    pub async fn invoke(&mut self, target: &str, arguments: Vec<Value>) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        self.send(&HubMessage::Invocation(Invocation {
            invocation_id: Some(id.clone()),
            target: target.to_owned(),
            arguments,
            ..Default::default()
        }))
        .await;
        id
    }

    /// A value in this connection's protocol.
    pub fn value<T: serde::Serialize>(&self, value: T) -> Value {
        Value::serialize(self.protocol, &value).expect("serializes")
    }

    /// The next data frame's bytes; `None` when the socket closed.
    pub async fn next_frame(&mut self) -> Option<Vec<u8>> {
        let socket = match &mut self.link {
            Link::Socket(socket) => socket,
            Link::InProcess(link) => {
                return tokio::time::timeout(STEP, link.recv())
                    .await
                    .expect("frame in time")
                    .map(|bytes| bytes.to_vec());
            }
        };
        loop {
            let message = tokio::time::timeout(STEP, socket.next())
                .await
                .expect("frame in time")?;
            match message {
                Ok(Message::Text(text)) => return Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => return Some(bytes.to_vec()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next hub message other than Ping; `None` when the socket closed.
    pub async fn next_message(&mut self) -> Option<HubMessage> {
        loop {
            if let Some(message) = self.decoder.next_message().expect("decodes") {
                if message != HubMessage::Ping {
                    return Some(message);
                }
                continue;
            }
            let frame = self.next_frame().await?;
            self.decoder.push(&frame);
        }
    }

    /// Whether the server closed the socket (reading until it does).
    pub async fn closed(&mut self) -> bool {
        while self.next_frame().await.is_some() {}
        true
    }

    /// Drops the connection with a TCP reset: no WebSocket close, no FIN. In process,
    /// drops the link.
    pub fn reset(self) {
        if let Link::Socket(socket) = &self.link
            && let MaybeTlsStream::Plain(tcp) = socket.get_ref()
        {
            // A zero linger makes the close a reset and does not block.
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(Duration::ZERO));
        }
    }

    /// Closes the socket (in process: ends the link).
    pub async fn close(self) {
        if let Link::Socket(mut socket) = self.link {
            let _ = WebSocketStream::close(&mut socket, None).await;
        }
    }
}

/// What a [`RawClient`] speaks over.
enum Link {
    /// A WebSocket over TCP.
    Socket(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// A link to a hub in the same process.
    InProcess(RawLink),
}

/// This process's resident memory now, in KiB (`VmRSS`).
pub fn rss_kib() -> u64 {
    rss_kib_of("self")
}

/// The resident memory of process `pid` (or `"self"`) now, in KiB (`VmRSS`); 0 when it
/// cannot be read.
pub fn rss_kib_of(pid: &str) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A memory figure of `/proc/{pid}/status`, in KiB; 0 when it cannot be read.
fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A small outbound budget, so tests reach a slow consumer's limits in a few messages:
/// 16 KiB to pause reading, 32 KiB to pace, 64 KiB soft for 500 ms, 1 MiB hard.
pub fn small_budget() -> hubs::routing::OutboundBudget {
    hubs::routing::OutboundBudget::default()
        .pause_reading(16 * 1024)
        .pace(32 * 1024)
        .soft_budget(64 * 1024)
        .grace(Duration::from_millis(500))
        .hard_cap(1 << 20)
}

/// Sends a bare HTTP/1.1 request and returns the status, headers and body as text.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_with_body(addr, method, target, headers, &[]).await
}

/// `POST {path}/negotiate?negotiateVersion=1`: the status and the body.
pub async fn negotiate(addr: SocketAddr, path: &str) -> (u16, String) {
    let target = format!("{path}/negotiate?negotiateVersion=1");
    let (status, _, body) = http(addr, "POST", &target, &[]).await;
    (status, body)
}

/// Like [`http`], with a request body.
pub async fn http_with_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    // The server may answer (413) before reading a large body.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("reads");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, head.to_owned(), body.to_owned())
}

/// A TCP proxy on 127.0.0.1 in front of a server, for faults between a client and it:
/// [`cut`](Self::cut) drops every connection through it at once (no closing handshake),
/// [`refuse`](Self::refuse) makes it drop new connections as they come, and
/// [`hold`](Self::hold) keeps new connections waiting (accepted, not forwarded) until
/// released.
pub struct TcpProxy {
    addr: SocketAddr,
    cuts: tokio::sync::watch::Sender<u64>,
    holding: tokio::sync::watch::Sender<bool>,
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (holding, _) = tokio::sync::watch::channel(false);
        let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = {
            let (cuts, refusing, holding) = (cuts.clone(), refusing.clone(), holding.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if refusing.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    let mut held = holding.subscribe();
                    tokio::spawn(async move {
                        if held.wait_for(|hold| !*hold).await.is_err() {
                            return;
                        }
                        let Ok(mut upstream) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Self {
            addr,
            cuts,
            holding,
            refusing,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection through the proxy.
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    /// Keeps new connections waiting (`true`), or forwards them, the waiting ones first
    /// (`false`).
    pub fn hold(&self, hold: bool) {
        self.holding.send_replace(hold);
    }

    /// Drops new connections as they come (`true`), or passes them on again (`false`).
    pub fn refuse(&self, refuse: bool) {
        self.refusing
            .store(refuse, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// This process's peak resident memory so far, in KiB (`VmHWM`); 0 when it cannot be
/// read.
pub fn peak_rss_kib_of(pid: &str) -> u64 {
    status_kib(pid, "VmHWM:")
}

pub mod churn;

/// A server in a child process (the calling test binary, run again), so that its memory
/// and file descriptors are its own.
///
/// A test file declares an ignored test named `child_server` that calls
/// [`serve_testhub`](child::serve_testhub); [`ServerProcess::start`](child::ServerProcess::start) runs the binary again
/// with only that test, and reads the address it listens on.
pub mod child {
    use std::process::Stdio;
    use std::time::Duration;

    use hubs::Server;
    use hubs_examples::interop::TestHub;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::process::{Child, Command};

    use super::{STEP, peak_rss_kib_of, rss_kib_of};

    /// Set in the environment of a child test process that serves TestHub.
    const CHILD: &str = "HUBS_TESTS_CHILD";

    /// In a child process (see [`ServerProcess`]): serves TestHub at `/testhub` on a free
    /// port, prints it, and serves until stdin closes (two minutes at most). Elsewhere,
    /// does nothing.
    ///
    /// It takes one command on stdin: `broadcast COUNT SIZE` sends COUNT messages of SIZE
    /// bytes to every connection through the hub context (`AllMessage`, each text starting
    /// with its number in 8 digits and a colon), as fast as the sends return, then prints
    /// `broadcast: sent_ms=… longest_send_ms=… disconnected=… cut_ms=…` (when the first slow consumer was
    /// cut, from the start; -1 for none).
    pub fn serve_testhub() {
        serve_testhub_with(String::new);
    }

    /// As [`serve_testhub`], with one more command: `stats` prints `stats: ` and what
    /// `stats` returns (a test binary's own figures, such as its live heap).
    pub fn serve_testhub_with(stats: fn() -> String) {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let service = Server::new()
                .hub("/testhub", TestHub)
                .build()
                .expect("builds");
            let context: hubs::HubContext<TestHub> = service.hub_context().expect("the hub");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds");
            println!(
                "child listening on {}",
                listener.local_addr().expect("addr")
            );
            tokio::spawn(service.serve(listener));
            let mut stdin = BufReader::new(tokio::io::stdin()).lines();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while let Ok(Ok(Some(line))) =
                tokio::time::timeout_at(deadline, stdin.next_line()).await
            {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    ["broadcast", count, size] => {
                        let count: u64 = count.parse().expect("a count");
                        let size: usize = size.parse().expect("a size");
                        broadcast(&context, count, size).await;
                    }
                    ["stats"] => println!("stats: {}", stats()),
                    _ => {}
                }
            }
        });
    }

    async fn broadcast(context: &hubs::HubContext<TestHub>, count: u64, size: usize) {
        let started = std::time::Instant::now();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let watcher = tokio::spawn({
            let context = context.clone();
            let cut = cut.clone();
            async move {
                while context.slow_consumer_stats().disconnected == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                cut.store(
                    started.elapsed().as_millis() as i64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        });
        let pad = "x".repeat(size.saturating_sub(9));
        let mut longest = Duration::ZERO;
        for i in 0..count {
            let text = format!("{i:08}:{pad}");
            let one = std::time::Instant::now();
            let _ = context.clients().all().send("AllMessage", (text,)).await;
            longest = longest.max(one.elapsed());
        }
        let sent = started.elapsed().as_millis();
        // A cut comes within grace + send_timeout of the start.
        let _ = tokio::time::timeout(Duration::from_secs(20), watcher).await;
        println!(
            "broadcast: sent_ms={sent} longest_send_ms={} disconnected={} cut_ms={}",
            longest.as_millis(),
            context.slow_consumer_stats().disconnected,
            cut.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    /// A TestHub server in a child process, optionally with a file-descriptor limit;
    /// killed when dropped.
    pub struct ServerProcess {
        child: Child,
        lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        /// Where it listens.
        pub addr: std::net::SocketAddr,
    }

    impl ServerProcess {
        /// Starts it and waits until it listens.
        pub async fn start(max_files: Option<u32>) -> Self {
            let exe = std::env::current_exe().expect("the test binary");
            // A profiler to run the child under, for investigations:
            // HUBS_TESTS_CHILD_WRAPPER="heaptrack -o /tmp/child" cargo test ...
            let wrapper = std::env::var("HUBS_TESTS_CHILD_WRAPPER").unwrap_or_default();
            let mut command = match max_files {
                _ if !wrapper.is_empty() => {
                    let mut words = wrapper.split_whitespace();
                    let mut command = Command::new(words.next().expect("a command"));
                    command.args(words).arg(exe);
                    command
                }
                Some(n) => {
                    let mut command = Command::new("bash");
                    command
                        .arg("-c")
                        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                        .arg(exe);
                    command
                }
                None => Command::new(exe),
            };
            let mut child = command
                .args([
                    "--exact",
                    "child_server",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("starts the child server");
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(stdout).lines();
            let addr = tokio::time::timeout(STEP, async {
                while let Some(line) = lines.next_line().await.expect("reads") {
                    // libtest prints the test's name on the same line.
                    if let Some((_, addr)) = line.split_once("child listening on ") {
                        return addr.trim().parse().expect("an address");
                    }
                }
                panic!("the child server ended before listening");
            })
            .await
            .expect("the child server listens in time");
            Self { child, lines, addr }
        }

        /// Sends the child a command (see [`serve_testhub`]) and returns the line it
        /// answers with, the one starting with `answer` (waiting up to `within`).
        pub async fn command(&mut self, command: &str, answer: &str, within: Duration) -> String {
            use tokio::io::AsyncWriteExt;
            let stdin = self.child.stdin.as_mut().expect("stdin");
            stdin
                .write_all(format!("{command}\n").as_bytes())
                .await
                .expect("writes");
            tokio::time::timeout(within, async {
                while let Some(line) = self.lines.next_line().await.expect("reads") {
                    if let Some(at) = line.find(answer) {
                        return line[at..].to_owned();
                    }
                }
                panic!("the child server ended before answering {command}");
            })
            .await
            .unwrap_or_else(|_| panic!("no answer to {command} in {within:?}"))
        }

        fn pid(&self) -> String {
            self.child.id().expect("running").to_string()
        }

        /// The child's resident memory, in KiB.
        pub fn rss_kib(&self) -> u64 {
            rss_kib_of(&self.pid())
        }

        /// The child's peak resident memory so far, in KiB.
        pub fn peak_rss_kib(&self) -> u64 {
            peak_rss_kib_of(&self.pid())
        }
    }
}

/// The number a burst's message starts with: 8 digits and a colon, right after a quote
/// (`"00000042:…`), anywhere in a JSON frame.
pub fn numbered(payload: &[u8]) -> Option<u64> {
    (9..payload.len()).find_map(|i| {
        (payload[i] == b':'
            && payload[i - 9] == b'"'
            && payload[i - 8..i].iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(&payload[i - 8..i]).ok()?.parse().ok())
        .flatten()
    })
}

/// A light WebSocket reader of the JSON hub protocol, for tests that receive millions of
/// frames: the upgrade by hand, then frame headers read straight off the socket (server
/// frames are never masked), so a debug build keeps up with the server.
pub struct FrameReader {
    stream: tokio::io::BufReader<TcpStream>,
}

impl FrameReader {
    /// Connects to `path`, upgrades, and completes a JSON handshake.
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let _ = stream.set_nodelay(true);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut response = Vec::new();
        while !response.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            within("the upgrade", stream.read_exact(&mut byte))
                .await
                .expect("reads the upgrade");
            response.push(byte[0]);
        }
        assert!(response.starts_with(b"HTTP/1.1 101"), "upgraded");
        let mut reader = Self {
            stream: tokio::io::BufReader::with_capacity(64 * 1024, stream),
        };
        reader
            .send_text(b"{\"protocol\":\"json\",\"version\":1}\x1e")
            .await;
        assert_eq!(reader.next_payload().await.as_deref(), Some(&b"{}\x1e"[..]));
        reader
    }

    /// Invokes `target` with JSON `arguments` (e.g. `["room"]`) and waits for its
    /// Completion, skipping what comes before it.
    pub async fn invoke(&mut self, target: &str, arguments: &str) {
        let message = format!(
            "{{\"type\":1,\"invocationId\":\"call\",\"target\":\"{target}\",\"arguments\":{arguments}}}\u{1e}"
        );
        self.send_text(message.as_bytes()).await;
        loop {
            let payload = within("a completion", self.next_payload())
                .await
                .expect("open");
            let text = String::from_utf8_lossy(&payload);
            if text.contains("\"type\":3") && text.contains("\"invocationId\":\"call\"") {
                return;
            }
        }
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, payload: &[u8]) {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .get_mut()
            .write_all(&frame)
            .await
            .expect("writes");
    }

    /// The next data frame's payload; `None` once the server closed (a close frame, or
    /// the end of the stream).
    pub async fn next_payload(&mut self) -> Option<Vec<u8>> {
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await.ok()?),
                127 => self.stream.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).ok()?];
            self.stream.read_exact(&mut payload).await.ok()?;
            match head[0] & 0x0f {
                0x1 | 0x2 => return Some(payload),
                0x8 => return None,
                _ => {}
            }
        }
    }
}
