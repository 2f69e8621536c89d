//! The Socket.IO peer: socketioxide (Socket.IO v5 over Engine.IO v4) serving the bench
//! scenarios over its own protocol. `echo` acknowledges with its data; `broadcast` emits
//! `receive` with its data to every socket of the namespace, then acknowledges.
//!
//! Configured as the hubs bench server is: the default tokio runtime, one hyper HTTP/1
//! server (axum's), socketioxide's defaults (its 128-packet per-socket buffer, 25 s
//! pings), no tracing. `socketio-server --port 5002` prints
//! `listening on http://127.0.0.1:<port>`.

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

async fn on_connect(socket: SocketRef) {
    socket.on("echo", async |Data::<Value>(data), ack: AckSender| {
        let _ = ack.send(&data);
    });
    socket.on(
        "broadcast",
        async |io: SocketIo, Data::<Value>(data), ack: AckSender| {
            let _ = io.emit("receive", &data).await;
            let _ = ack.send(&());
        },
    );
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = <hubs_bench::PortArgs as clap::Parser>::parse()
        .port
        .unwrap_or(5002);
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
