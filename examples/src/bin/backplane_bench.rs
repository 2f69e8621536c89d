//! Cross-server broadcast throughput over the Redis backplane, against the same scenario
//! on one server, in one run.
//!
//! ```text
//! cargo run --release -p hubs-examples --bin backplane_bench -- [--clients 200] [--messages 2000]
//! ```
//!
//! It starts `redis-server` (Debian's package) on a free 127.0.0.1 port, then for each
//! scenario: `clients` listeners connect (WebSockets, JSON), one sender invokes
//! `Broadcast(text)` `messages` times in a closed loop, and the listeners count the
//! `Receive` deliveries. One server: everyone on one in-memory server. Two servers:
//! listeners split over two servers sharing Redis, the sender on the first. It prints
//! deliveries per second for each and the ratio, and the delivery latencies (p50, p99:
//! one server; two servers, for listeners on the sender's server and on the other).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubs::connection::HubConnection;
use hubs::{Context, HubOptions, Server, hub};
use hubs_redis::{RedisLifetimeManager, RedisOptions};

struct Fanout;

#[hub]
impl Fanout {
    pub(crate) async fn broadcast(&self, cx: &Context<Self>, text: String) {
        let _ = cx.clients().all().send("Receive", (text,)).await;
    }
}

async fn server(options: HubOptions) -> std::net::SocketAddr {
    let service = Server::new()
        .hub_with("/fanout", Fanout, options)
        .build()
        .expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(service.serve(listener));
    addr
}

/// Latencies, in microseconds, of the deliveries to listeners on the sender's server and
/// on the others.
#[derive(Default)]
struct Latencies {
    local: Vec<u64>,
    remote: Vec<u64>,
}

async fn listeners(
    addrs: &[std::net::SocketAddr],
    count: usize,
    received: &Arc<AtomicU64>,
    base: Instant,
    latencies: &Arc<Mutex<Latencies>>,
) -> Vec<HubConnection> {
    let mut connections = Vec::with_capacity(count);
    for i in 0..count {
        let addr = addrs[i % addrs.len()];
        let remote = addr != addrs[0];
        let connection = HubConnection::builder(format!("http://{addr}/fanout"))
            .transports([hubs::TransportKind::WebSockets])
            .build();
        let received = received.clone();
        let latencies = latencies.clone();
        connection.on("Receive", move |(text,): (String,)| {
            received.fetch_add(1, Ordering::Relaxed);
            // The text is the send time, in microseconds since `base`.
            if let Ok(sent) = text.parse::<u64>() {
                let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
                let mut latencies = latencies.lock().unwrap_or_else(|p| p.into_inner());
                let into = if remote {
                    &mut latencies.remote
                } else {
                    &mut latencies.local
                };
                into.push(now.saturating_sub(sent));
            }
            async {}
        });
        connection.start().await.expect("listener starts");
        connections.push(connection);
    }
    connections
}

/// The `p`-th percentile of `samples`, in milliseconds.
fn percentile(samples: &mut [u64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let index = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[index] as f64 / 1000.0
}

/// Deliveries per second of `messages` broadcasts to `clients` listeners spread over
/// `addrs`, sent from a client of `addrs[0]`, and the delivery latencies.
async fn run(addrs: &[std::net::SocketAddr], clients: usize, messages: u64) -> (f64, Latencies) {
    let received = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let connections = listeners(addrs, clients, &received, base, &latencies).await;
    let sender = HubConnection::builder(format!("http://{}/fanout", addrs[0]))
        .transports([hubs::TransportKind::WebSockets])
        .build();
    sender.start().await.expect("sender starts");
    let expected = clients as u64 * messages;
    let started = Instant::now();
    for i in 0..messages {
        let _ = i;
        let sent = base.elapsed().as_micros().to_string();
        let () = sender
            .invoke("Broadcast", (sent,))
            .await
            .expect("broadcast");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = received.load(Ordering::Relaxed);
    if delivered < expected {
        eprintln!("warning: {delivered} of {expected} deliveries arrived");
    }
    sender.stop().await;
    for connection in connections {
        connection.stop().await;
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    (delivered as f64 / elapsed, latencies)
}

/// The backplane's throughput and latency on a real `redis-server`.
#[derive(clap::Parser)]
struct Args {
    /// How many clients receive.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// How many messages are sent.
    #[arg(long, default_value_t = 2000)]
    messages: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { clients, messages } = clap::Parser::parse();

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start redis-server ({e}); install Debian's redis-server"))?;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("redis://127.0.0.1:{port}/");

    let single = server(HubOptions::default()).await;
    let (one, mut one_latency) = run(&[single], clients, messages).await;

    let backplane = |name: &'static str| {
        let url = url.clone();
        async move { RedisLifetimeManager::connect(RedisOptions::new(url).prefix(name), "fanout").await }
    };
    let a = server(HubOptions::default().lifetime_manager(backplane("bench").await?)).await;
    let b = server(HubOptions::default().lifetime_manager(backplane("bench").await?)).await;
    let (two, mut two_latency) = run(&[a, b], clients, messages).await;

    println!(
        "{{\"clients\":{clients},\"messages\":{messages},\"one_server_deliveries_per_s\":{one:.0},\"two_servers_redis_deliveries_per_s\":{two:.0},\"ratio\":{:.2},\"one_server_latency_ms\":{{\"p50\":{:.2},\"p99\":{:.2}}},\"two_servers_same_server_latency_ms\":{{\"p50\":{:.2},\"p99\":{:.2}}},\"two_servers_cross_server_latency_ms\":{{\"p50\":{:.2},\"p99\":{:.2}}}}}",
        two / one,
        percentile(&mut one_latency.local, 0.5),
        percentile(&mut one_latency.local, 0.99),
        percentile(&mut two_latency.local, 0.5),
        percentile(&mut two_latency.local, 0.99),
        percentile(&mut two_latency.remote, 0.5),
        percentile(&mut two_latency.remote, 0.99),
    );
    let _ = redis.kill().await;
    Ok(())
}
