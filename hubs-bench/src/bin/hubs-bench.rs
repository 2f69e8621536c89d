//! The load generator. Speaks SignalR itself (handshake; JSON or MessagePack; WebSockets,
//! skipping negotiation) and prints one JSON line of results per run.
//!
//! ```text
//! hubs-bench --url ws://127.0.0.1:5000/bench --scenario echo --connections 100 --size 16 \
//!            [--inflight 1] [--duration 10] [--warmup 2] [--protocol json|messagepack]
//! hubs-bench --url … --scenario broadcast --connections 1000 [--inflight 4] [--rate 200]
//! hubs-bench --url … --scenario connect --connections 10000 --server-pid PID [--hold 3]
//! ```
//!
//! Scenarios:
//! * `echo`: each connection invokes `Echo(text of --size bytes)` in a closed loop with
//!   `--inflight` calls outstanding: invocations/s and latency percentiles.
//! * `broadcast`: listeners count `Receive` deliveries while one sender invokes
//!   `Broadcast(text)` (closed loop, `--inflight` outstanding): deliveries/s. With
//!   `--rate R`, the sender sends R broadcasts/s instead, each stamped with its send time,
//!   and the listeners' delivery latency percentiles are reported.
//! * `connect`: opens and holds idle connections (spread over 127.0.0.x source addresses
//!   when many): successes, connect rate, and the server's RSS per connection from /proc.
//!
//! Protocol defects are counted: frames of the wrong type, undecodable messages,
//! unexpected messages, and lost deliveries.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hubs::protocol::{
    HandshakeRequest, HubMessage, Invocation, MessageDecoder, Outcome, Protocol, Value,
};
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

type Socket = WebSocketStream<tokio::net::TcpStream>;

#[derive(Default)]
struct Defects {
    wrong_frames: AtomicU64,
    undecodable: AtomicU64,
    unexpected: AtomicU64,
}

impl Defects {
    fn total(&self) -> u64 {
        self.wrong_frames.load(Ordering::Relaxed)
            + self.undecodable.load(Ordering::Relaxed)
            + self.unexpected.load(Ordering::Relaxed)
    }
}

struct Peer {
    socket: Socket,
    protocol: Protocol,
    decoder: MessageDecoder,
}

impl Peer {
    /// Connects (from `source`, if given) and completes the handshake.
    async fn connect(
        url: &str,
        address: SocketAddr,
        protocol: Protocol,
        source: Option<Ipv4Addr>,
    ) -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(SocketAddr::from((source, 0)))?;
        }
        let stream = socket.connect(address).await?;
        stream.set_nodelay(true)?;
        let request = url.into_client_request().map_err(std::io::Error::other)?;
        let (mut socket, _) =
            client_async_with_config(request, stream, Some(hubs_bench::websocket_config()))
                .await
                .map_err(std::io::Error::other)?;
        let mut handshake = Vec::new();
        HandshakeRequest::new(protocol.name(), 1).encode(&mut handshake);
        socket
            .send(Message::Text(
                String::from_utf8_lossy(&handshake).into_owned().into(),
            ))
            .await
            .map_err(std::io::Error::other)?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => break,
                Some(Ok(_)) => {}
                _ => return Err(std::io::Error::other("closed during the handshake")),
            }
        }
        Ok(Self {
            socket,
            protocol,
            decoder: protocol.decoder().with_max_message_size(None),
        })
    }

    fn frame(&self, bytes: Vec<u8>) -> Message {
        match self.protocol {
            Protocol::Json => Message::Text(String::from_utf8(bytes).unwrap_or_default().into()),
            Protocol::MessagePack => Message::Binary(bytes.into()),
        }
    }

    /// The next hub messages (one frame's worth), counting defects.
    async fn messages(&mut self, defects: &Defects) -> Option<Vec<HubMessage>> {
        loop {
            let frame = self.socket.next().await?.ok()?;
            let bytes: Bytes = match (frame, self.protocol) {
                (Message::Text(text), Protocol::Json) => Bytes::from(text),
                (Message::Binary(bytes), Protocol::MessagePack) => bytes,
                (Message::Text(_) | Message::Binary(_), _) => {
                    defects.wrong_frames.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                (Message::Close(_), _) => return None,
                _ => continue,
            };
            self.decoder.push(&bytes);
            let mut out = Vec::new();
            loop {
                match self.decoder.next_message() {
                    Ok(Some(HubMessage::Ping)) => {}
                    Ok(Some(message)) => out.push(message),
                    Ok(None) => break,
                    Err(_) => {
                        defects.undecodable.fetch_add(1, Ordering::Relaxed);
                        if self.decoder.next_message().is_err() {
                            return None;
                        }
                    }
                }
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }
}

fn invocation(protocol: Protocol, id: Option<String>, target: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let message = HubMessage::Invocation(Invocation {
        invocation_id: id,
        target: target.to_owned(),
        arguments: vec![Value::serialize(protocol, text).unwrap_or_else(|_| Value::null(protocol))],
        ..Default::default()
    });
    let _ = protocol.encode(&message, &mut out);
    out
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn source_address(i: usize) -> Option<Ipv4Addr> {
    // Loopback only; 4 000 connections per source address stay well inside the ephemeral
    // port range, even with earlier runs' ports in TIME_WAIT.
    Some(Ipv4Addr::new(127, 0, 0, 1 + (i / 4_000) as u8))
}

struct Settings {
    url: String,
    address: SocketAddr,
    protocol: Protocol,
    connections: usize,
    size: usize,
    inflight: usize,
    duration: Duration,
    warmup: Duration,
    server_pid: u32,
}

async fn connect_all(settings: &Settings, defects: &Arc<Defects>) -> Vec<Peer> {
    let mut peers = Vec::with_capacity(settings.connections);
    for i in 0..settings.connections {
        match Peer::connect(
            &settings.url,
            settings.address,
            settings.protocol,
            source_address(i),
        )
        .await
        {
            Ok(peer) => peers.push(peer),
            Err(error) => {
                eprintln!("connection {i} failed: {error}");
                defects.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    peers
}

async fn echo(settings: Settings) -> serde_json::Value {
    let defects = Arc::new(Defects::default());
    let peers = connect_all(&settings, &defects).await;
    let text = "x".repeat(settings.size);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let mut tasks = Vec::new();
    for mut peer in peers {
        let (text, measuring, stop, count, latencies, defects) = (
            text.clone(),
            measuring.clone(),
            stop.clone(),
            count.clone(),
            latencies.clone(),
            defects.clone(),
        );
        let inflight = settings.inflight;
        tasks.push(tokio::spawn(async move {
            let mut sent: HashMap<String, Instant> = HashMap::new();
            let mut next = 0u64;
            let mut local = Vec::new();
            for _ in 0..inflight {
                next += 1;
                let id = next.to_string();
                let frame = peer.frame(invocation(peer.protocol, Some(id.clone()), "Echo", &text));
                sent.insert(id, Instant::now());
                if peer.socket.send(frame).await.is_err() {
                    return;
                }
            }
            while !stop.load(Ordering::Relaxed) {
                let Some(messages) = peer.messages(&defects).await else {
                    break;
                };
                for message in messages {
                    let HubMessage::Completion(completion) = message else {
                        defects.unexpected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if !matches!(completion.outcome, Outcome::Result(_)) {
                        defects.unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(started) = sent.remove(&completion.invocation_id)
                        && measuring.load(Ordering::Relaxed)
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                        local.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    next += 1;
                    let id = next.to_string();
                    let frame =
                        peer.frame(invocation(peer.protocol, Some(id.clone()), "Echo", &text));
                    sent.insert(id, Instant::now());
                    if peer.socket.send(frame).await.is_err() {
                        break;
                    }
                }
            }
            latencies.lock().await.extend(local);
            let _ = peer.socket.close(None).await;
        }));
    }
    tokio::time::sleep(settings.warmup).await;
    let cpu_before = cpu_seconds(settings.server_pid);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(settings.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(settings.server_pid) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let invocations = count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for task in tasks {
        task.abort();
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    latencies.sort_unstable();
    serde_json::json!({
        "invocations": invocations,
        "invocations_per_s": (invocations as f64 / elapsed).round(),
        "p50_us": percentile(&latencies, 0.50),
        "p99_us": percentile(&latencies, 0.99),
        "p999_us": percentile(&latencies, 0.999),
        "server_cpu_s": cpu,
        "server_cpu_us_per_op": if invocations > 0 { cpu * 1e6 / invocations as f64 } else { 0.0 },
        "defects": defects.total(),
    })
}

async fn broadcast(settings: Settings, rate: Option<f64>) -> serde_json::Value {
    let defects = Arc::new(Defects::default());
    let listeners = connect_all(&settings, &defects).await;
    let connected = listeners.len() as u64;
    let received = Arc::new(AtomicU64::new(0));
    let received_total = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for mut peer in listeners {
        let (received, received_total, measuring, latencies, defects) = (
            received.clone(),
            received_total.clone(),
            measuring.clone(),
            latencies.clone(),
            defects.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while let Some(messages) = peer.messages(&defects).await {
                for message in messages {
                    match message {
                        HubMessage::Invocation(Invocation {
                            target, arguments, ..
                        }) if target == "Receive" => {
                            received_total.fetch_add(1, Ordering::Relaxed);
                            if measuring.load(Ordering::Relaxed) {
                                received.fetch_add(1, Ordering::Relaxed);
                                if rate.is_some()
                                    && let Some(sent) = arguments
                                        .first()
                                        .and_then(|a| a.deserialize::<String>().ok())
                                    && let Ok(sent) = sent.parse::<u64>()
                                {
                                    let now = epoch.elapsed().as_micros() as u64;
                                    local
                                        .push(now.saturating_sub(sent).min(u64::from(u32::MAX))
                                            as u32);
                                    if local.len() >= 64 {
                                        latencies.lock().await.append(&mut local);
                                    }
                                }
                            }
                        }
                        _ => {
                            defects.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            latencies.lock().await.extend(local);
        }));
    }
    let mut sender = match Peer::connect(
        &settings.url,
        settings.address,
        settings.protocol,
        Some(Ipv4Addr::new(127, 0, 0, 200)),
    )
    .await
    {
        Ok(sender) => sender,
        Err(error) => return serde_json::json!({ "error": format!("sender: {error}") }),
    };
    let text = "y".repeat(settings.size);
    let completed = Arc::new(AtomicU64::new(0));
    let completed_total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sending = {
        let (completed, completed_total, stop, measuring, defects) = (
            completed.clone(),
            completed_total.clone(),
            stop.clone(),
            measuring.clone(),
            defects.clone(),
        );
        let inflight = settings.inflight;
        tokio::spawn(async move {
            let mut next = 0u64;
            match rate {
                None => {
                    for _ in 0..inflight {
                        next += 1;
                        let frame = sender.frame(invocation(
                            sender.protocol,
                            Some(next.to_string()),
                            "Broadcast",
                            &text,
                        ));
                        let _ = sender.socket.send(frame).await;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        let Some(messages) = sender.messages(&defects).await else {
                            break;
                        };
                        for message in messages {
                            match message {
                                HubMessage::Completion(_) => {
                                    completed_total.fetch_add(1, Ordering::Relaxed);
                                    if measuring.load(Ordering::Relaxed) {
                                        completed.fetch_add(1, Ordering::Relaxed);
                                    }
                                    next += 1;
                                    let frame = sender.frame(invocation(
                                        sender.protocol,
                                        Some(next.to_string()),
                                        "Broadcast",
                                        &text,
                                    ));
                                    let _ = sender.socket.send(frame).await;
                                }
                                HubMessage::Invocation(_) => {}
                                _ => {
                                    defects.unexpected.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
                Some(rate) => {
                    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                    // The sender's own deliveries and completions are read and dropped.
                    let (mut sink, mut stream) = sender.socket.split();
                    tokio::spawn(async move { while stream.next().await.is_some() {} });
                    while !stop.load(Ordering::Relaxed) {
                        interval.tick().await;
                        let stamp = epoch.elapsed().as_micros().to_string();
                        let bytes = invocation(sender.protocol, None, "Broadcast", &stamp);
                        let frame = match sender.protocol {
                            Protocol::Json => {
                                Message::Text(String::from_utf8(bytes).unwrap_or_default().into())
                            }
                            Protocol::MessagePack => Message::Binary(bytes.into()),
                        };
                        if sink.send(frame).await.is_err() {
                            break;
                        }
                        completed_total.fetch_add(1, Ordering::Relaxed);
                        if measuring.load(Ordering::Relaxed) {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };
    tokio::time::sleep(settings.warmup).await;
    let cpu_before = cpu_seconds(settings.server_pid);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(settings.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(settings.server_pid) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let deliveries = received.load(Ordering::Relaxed);
    // Stop sending, then wait until deliveries stop arriving: lost = every broadcast the
    // server completed, times the listeners, minus every delivery (lag is not loss).
    tokio::time::sleep(Duration::from_millis(100)).await;
    sending.abort();
    let mut last = received_total.load(Ordering::Relaxed);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = received_total.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    for task in &tasks {
        task.abort();
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    latencies.sort_unstable();
    let broadcasts = completed.load(Ordering::Relaxed);
    let lost = (completed_total.load(Ordering::Relaxed) * connected)
        .saturating_sub(received_total.load(Ordering::Relaxed));
    serde_json::json!({
        "listeners": connected,
        "broadcasts": broadcasts,
        "deliveries": deliveries,
        "deliveries_per_s": (deliveries as f64 / elapsed).round(),
        "p50_us": percentile(&latencies, 0.50),
        "p99_us": percentile(&latencies, 0.99),
        "p999_us": percentile(&latencies, 0.999),
        "lost": lost,
        "server_cpu_s": cpu,
        "server_cpu_us_per_op": if deliveries > 0 { cpu * 1e6 / deliveries as f64 } else { 0.0 },
        "defects": defects.total() + lost,
    })
}

/// The server's CPU time so far (user + system), in seconds, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may contain spaces) end with ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

async fn connect(settings: Settings, pid: u32, hold: Duration) -> serde_json::Value {
    let defects = Arc::new(Defects::default());
    let before = rss_kib(pid);
    let started = Instant::now();
    let peers = connect_all(&settings, &defects).await;
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let after = rss_kib(pid);
    let held = peers.len();
    let per_connection = if held > 0 {
        (after.saturating_sub(before) * 1024) as f64 / held as f64
    } else {
        0.0
    };
    drop(peers);
    serde_json::json!({
        "held": held,
        "failed": settings.connections - held,
        "connects_per_s": (held as f64 / elapsed).round(),
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_rss_per_connection_bytes": per_connection.round(),
        "defects": defects.total(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url: String = hubs_bench::option(&args, "--url", "ws://127.0.0.1:5000/bench".to_owned());
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .ok_or("--url must be ws://host:port/path")?;
    let address: SocketAddr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or("cannot resolve --url")?;
    let scenario: String = hubs_bench::option(&args, "--scenario", "echo".to_owned());
    let protocol = Protocol::from_name(&hubs_bench::option(&args, "--protocol", "json".to_owned()))
        .ok_or("unknown --protocol")?;
    let settings = Settings {
        url: url.clone(),
        address,
        protocol,
        connections: hubs_bench::option(&args, "--connections", 1),
        size: hubs_bench::option(&args, "--size", 16),
        inflight: hubs_bench::option(&args, "--inflight", 1),
        duration: hubs_bench::seconds(&args, "--duration", 10.0),
        warmup: hubs_bench::seconds(&args, "--warmup", 2.0),
        server_pid: hubs_bench::option(&args, "--server-pid", 0),
    };
    let mut header = serde_json::json!({
        "scenario": scenario,
        "url": url,
        "protocol": protocol.name(),
        "connections": settings.connections,
        "size": settings.size,
        "inflight": settings.inflight,
        "duration_s": settings.duration.as_secs_f64(),
    });
    let result = match scenario.as_str() {
        "echo" => echo(settings).await,
        "broadcast" => {
            let rate: f64 = hubs_bench::option(&args, "--rate", 0.0);
            broadcast(settings, (rate > 0.0).then_some(rate)).await
        }
        "connect" => {
            let pid = settings.server_pid;
            connect(settings, pid, hubs_bench::seconds(&args, "--hold", 3.0)).await
        }
        other => return Err(format!("unknown --scenario {other}").into()),
    };
    if let (Some(header), Some(result)) = (header.as_object_mut(), result.as_object()) {
        header.extend(result.clone());
    }
    println!("{header}");
    Ok(())
}
