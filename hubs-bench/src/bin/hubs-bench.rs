//! The load generator. Speaks SignalR itself (handshake; JSON or MessagePack; WebSockets,
//! skipping negotiation), or Socket.IO v5 or JSON-RPC 2.0 for the peers, and prints one
//! JSON line of results per run.
//!
//! ```text
//! hubs-bench --url ws://127.0.0.1:5000/bench --scenario echo --connections 100 --size 16 \
//!            [--inflight 1] [--duration 10] [--warmup 2] [--protocol json|messagepack]
//!            [--wire signalr|socketio|jsonrpc]
//! hubs-bench --url … --scenario broadcast --connections 1000 [--inflight 4] [--rate 200]
//! hubs-bench --url … --scenario connect --connections 10000 --server-pid PID [--hold 3]
//! hubs-bench --url … --scenario burst --connections 200 --messages 20000 --size 1024 \
//!            --server-pid PID [--sender-url ws://…]
//! ```
//!
//! Scenarios:
//! * `echo`: each connection calls `echo(text of --size bytes)` in a closed loop with
//!   `--inflight` calls outstanding: invocations/s and latency percentiles.
//! * `broadcast`: listeners count `receive` deliveries while one sender calls
//!   `broadcast(text)` (closed loop, `--inflight` outstanding): deliveries/s. With
//!   `--rate R`, the sender sends R broadcasts/s instead, each stamped with its send time,
//!   and the listeners' delivery latency percentiles are reported.
//! * `burst`: listeners count `receive` deliveries while one sender writes `--messages`
//!   broadcasts as fast as it can, never waiting for an answer (`--sender-url` puts the
//!   sender on another server, e.g. across a Redis backplane): the time until every
//!   listener has them all, deliveries lost, listeners cut, and the server's peak RSS.
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

use hubs_bench::wire::{Defects, Event, Peer, Wire};
use tokio::sync::Mutex;

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
    wire: Wire,
    connections: usize,
    size: usize,
    inflight: usize,
    duration: Duration,
    warmup: Duration,
    server_pid: u32,
}

async fn connect_all(settings: &Settings, defects: &Arc<Defects>, subscribe: bool) -> Vec<Peer> {
    let mut peers = Vec::with_capacity(settings.connections);
    for i in 0..settings.connections {
        let connected = Peer::connect(
            &settings.url,
            settings.address,
            settings.wire,
            source_address(i),
        )
        .await;
        let subscribed = match connected {
            Ok(mut peer) if subscribe => peer.subscribe().await.map(|()| peer),
            other => other,
        };
        match subscribed {
            Ok(peer) => peers.push(peer),
            Err(error) => {
                let failed = defects.unexpected.fetch_add(1, Ordering::Relaxed);
                if failed < 3 {
                    eprintln!("connection {i} failed: {error}");
                }
            }
        }
    }
    peers
}

async fn echo(settings: Settings) -> serde_json::Value {
    let defects = Arc::new(Defects::default());
    let peers = connect_all(&settings, &defects, false).await;
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
            let mut sent: HashMap<u64, Instant> = HashMap::new();
            let mut next = 0u64;
            let mut local = Vec::new();
            for _ in 0..inflight {
                next += 1;
                sent.insert(next, Instant::now());
                if peer.send(peer.echo(next, &text)).await.is_err() {
                    return;
                }
            }
            while !stop.load(Ordering::Relaxed) {
                let Some(events) = peer.events(&defects).await else {
                    break;
                };
                for event in events {
                    let id = match event {
                        Event::Reply(id) => id,
                        Event::Failed(id) => {
                            defects.unexpected.fetch_add(1, Ordering::Relaxed);
                            id
                        }
                        Event::Delivery(_) => {
                            defects.unexpected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    if let Some(started) = sent.remove(&id)
                        && measuring.load(Ordering::Relaxed)
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                        local.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    next += 1;
                    sent.insert(next, Instant::now());
                    if peer.send(peer.echo(next, &text)).await.is_err() {
                        break;
                    }
                }
            }
            latencies.lock().await.extend(local);
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
    let listeners = connect_all(&settings, &defects, true).await;
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
            while let Some(events) = peer.events(&defects).await {
                for event in events {
                    let Event::Delivery(text) = event else {
                        defects.unexpected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    received_total.fetch_add(1, Ordering::Relaxed);
                    if !measuring.load(Ordering::Relaxed) {
                        continue;
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                    if rate.is_some()
                        && let Ok(sent) = text.parse::<u64>()
                    {
                        let now = epoch.elapsed().as_micros() as u64;
                        local.push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                        if local.len() >= 64 {
                            latencies.lock().await.append(&mut local);
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
        settings.wire,
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
                        let _ = sender.send(sender.broadcast(Some(next), &text)).await;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        let Some(events) = sender.events(&defects).await else {
                            break;
                        };
                        for event in events {
                            match event {
                                Event::Reply(_) => {
                                    completed_total.fetch_add(1, Ordering::Relaxed);
                                    if measuring.load(Ordering::Relaxed) {
                                        completed.fetch_add(1, Ordering::Relaxed);
                                    }
                                    next += 1;
                                    let _ = sender.send(sender.broadcast(Some(next), &text)).await;
                                }
                                // The sender's own deliveries (SignalR's and Socket.IO's
                                // broadcasts include it).
                                Event::Delivery(_) => {}
                                Event::Failed(_) => {
                                    defects.unexpected.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
                Some(rate) => {
                    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                    while !stop.load(Ordering::Relaxed) {
                        tokio::select! {
                            _ = interval.tick() => {}
                            // The sender's own deliveries and answers are read and dropped
                            // (and Engine.IO pings answered).
                            events = sender.events(&defects) => {
                                if events.is_none() {
                                    break;
                                }
                                continue;
                            }
                        }
                        let stamp = epoch.elapsed().as_micros().to_string();
                        next += 1;
                        // Answered, so every wire acknowledges: the answers are dropped.
                        if sender
                            .send(sender.broadcast(Some(next), &stamp))
                            .await
                            .is_err()
                        {
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

/// A burst: every broadcast written at once, then every listener waits for all of them.
async fn burst(settings: Settings, messages: u64, sender_url: String) -> serde_json::Value {
    let defects = Arc::new(Defects::default());
    let listeners = connect_all(&settings, &defects, true).await;
    let connected = listeners.len() as u64;
    let received = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicU64::new(0));
    let peak_before = peak_rss_kib(settings.server_pid);
    let mut tasks = Vec::new();
    for mut peer in listeners {
        let (received, cut, defects) = (received.clone(), cut.clone(), defects.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < messages {
                let Some(events) = peer.events(&defects).await else {
                    cut.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                for event in events {
                    if let Event::Delivery(_) = event {
                        got += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let sender_address = sender_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .unwrap_or(settings.address);
    let mut sender = match Peer::connect(
        &sender_url,
        sender_address,
        settings.wire,
        Some(Ipv4Addr::new(127, 0, 0, 200)),
    )
    .await
    {
        Ok(sender) => sender,
        Err(error) => return serde_json::json!({ "error": format!("sender: {error}") }),
    };
    let text = "y".repeat(settings.size);
    let started = Instant::now();
    // The sender's own deliveries are read and dropped, so it is never the one behind.
    let draining = tokio::spawn({
        let defects = defects.clone();
        async move {
            for _ in 0..messages {
                let message = sender.broadcast(None, &text);
                if sender.send_reading(message).await.is_err() {
                    break;
                }
            }
            while sender.events(&defects).await.is_some() {}
        }
    });
    // Until every listener has every message, or nothing more arrives for 5 s (a server
    // that drops), two minutes at most.
    let all = futures_util::future::join_all(tasks);
    let stalled = {
        let received = received.clone();
        async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let now = received.load(Ordering::Relaxed);
                if now == last {
                    return;
                }
                last = now;
            }
        }
    };
    let finished = tokio::select! {
        done = tokio::time::timeout(Duration::from_secs(120), all) => done.is_ok(),
        () = stalled => false,
    };
    let seconds = started.elapsed().as_secs_f64();
    draining.abort();
    let delivered = received.load(Ordering::Relaxed);
    serde_json::json!({
        "listeners": connected,
        "messages": messages,
        "delivered": delivered,
        "lost": (messages * connected).saturating_sub(delivered),
        "cut": cut.load(Ordering::Relaxed),
        "finished": finished,
        "seconds": seconds,
        "deliveries_per_s": (delivered as f64 / seconds).round(),
        "server_peak_rss_kib": peak_rss_kib(settings.server_pid),
        "server_peak_rss_before_kib": peak_before,
        "defects": defects.total(),
    })
}

/// The server's peak resident memory so far (`VmHWM`), in KiB, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A memory figure of `/proc/{pid}/status`, in KiB; 0 when it cannot be read.
fn status_kib(pid: u32, field: &str) -> u64 {
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
    status_kib(pid, "VmRSS:")
}

async fn connect(settings: Settings, pid: u32, hold: Duration) -> serde_json::Value {
    let defects = Arc::new(Defects::default());
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut peers = connect_all(&settings, &defects, false).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Hold them, answering pings (Engine.IO's server pings every 25 s).
    let holding = futures_util::future::join_all(peers.iter_mut().map(|peer| {
        let defects = defects.clone();
        async move { while peer.events(&defects).await.is_some() {} }
    }));
    let _ = tokio::time::timeout(hold, holding).await;
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
    let args = <hubs_bench::LoadArgs as clap::Parser>::parse();
    let url = args.url.clone();
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .ok_or("--url must be ws://host:port/path")?;
    let address: SocketAddr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or("cannot resolve --url")?;
    let scenario = args.scenario.clone();
    let wire = Wire::parse(&args.wire, &args.protocol).ok_or("unknown --wire or --protocol")?;
    let settings = Settings {
        url: url.clone(),
        address,
        wire,
        connections: args.connections,
        size: args.size,
        inflight: args.inflight,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        server_pid: args.server_pid,
    };
    let mut header = serde_json::json!({
        "scenario": scenario,
        "url": url,
        "wire": wire.name(),
        "connections": settings.connections,
        "size": settings.size,
        "inflight": settings.inflight,
        "duration_s": settings.duration.as_secs_f64(),
    });
    let result = match scenario.as_str() {
        "echo" => echo(settings).await,
        "broadcast" => {
            let rate = args.rate;
            broadcast(settings, (rate > 0.0).then_some(rate)).await
        }
        "burst" => {
            let sender = args.sender_url.clone().unwrap_or_else(|| url.clone());
            burst(settings, args.messages, sender).await
        }
        "connect" => {
            let pid = settings.server_pid;
            connect(settings, pid, Duration::from_secs_f64(args.hold)).await
        }
        other => return Err(format!("unknown --scenario {other}").into()),
    };
    if let (Some(header), Some(result)) = (header.as_object_mut(), result.as_object()) {
        header.extend(result.clone());
    }
    println!("{header}");
    Ok(())
}
