//! Benchmarks of hubs against the practical ceiling of the machine.
//!
//! * `bench-server`: the hubs bench hub (`Echo`, `Broadcast`) at `/bench`.
//! * `baseline-server`: the least work that speaks enough SignalR for the same scenarios,
//!   on the same stack (tokio + tungstenite, and the hubs protocol codec), with none of
//!   the hub runtime.
//! * `socketio-server` and `jsonrpc-server`: the peers, socketioxide and jsonrpsee serving
//!   the same scenarios over their own protocols.
//! * `hubs-bench`: the load generator: echo, broadcast and connect scenarios against any
//!   server URL, over SignalR, Socket.IO or JSON-RPC ([`wire`]), one JSON line of results
//!   per run.
//!
//! `scripts/bench` runs them side by side; `BENCHMARKS.md` has the method and figures.

pub mod wire;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The WebSocket buffers the baseline server and the load generator use, the same as the
/// hubs transport's: tungstenite's default read buffer is 128 KiB, zero-filled, per
/// connection, and idle connections need far less; an 8 KiB write buffer lets the frames
/// of one flush go out in one write (with 0, every frame is a `send(2)` of its own).
pub fn websocket_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4 * 1024;
    config.write_buffer_size = 8 * 1024;
    config
}

/// The load generator of `scripts/bench`: one JSON line of results per run.
#[derive(Debug, clap::Parser)]
pub struct LoadArgs {
    /// The server's WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:5000/bench")]
    pub url: String,
    /// `echo`, `broadcast`, `burst` or `connect`.
    #[arg(long, default_value = "echo")]
    pub scenario: String,
    /// `signalr`, `socketio` or `jsonrpc`.
    #[arg(long, default_value = "signalr")]
    pub wire: String,
    /// The SignalR hub protocol: `json` or `messagepack`.
    #[arg(long, default_value = "json")]
    pub protocol: String,
    /// Connections (listeners for `broadcast` and `burst`).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Calls outstanding per connection.
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// The server's process id, for its CPU time and RSS.
    #[arg(long = "server-pid", default_value_t = 0)]
    pub server_pid: u32,
    /// `broadcast`: broadcasts per second, stamped for latency (0: a closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// `burst`: how many broadcasts the sender writes.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// `burst`: the sender's server, when not `--url` (e.g. across a Redis backplane).
    #[arg(long = "sender-url")]
    pub sender_url: Option<String>,
    /// `connect`: seconds the connections are held.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
}

/// The options of the benchmark's servers.
#[derive(Debug, clap::Parser)]
pub struct PortArgs {
    /// The port to listen on, on 127.0.0.1 (each server has its own default).
    #[arg(long)]
    pub port: Option<u16>,
    /// `bench-server` only: scale out over this Redis server.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}
