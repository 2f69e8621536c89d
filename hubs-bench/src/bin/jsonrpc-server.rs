//! The JSON-RPC peer: jsonrpsee (JSON-RPC 2.0 over WebSocket) serving the bench scenarios
//! over its own protocol. `echo(text)` returns `text`; `subscribe_receive` subscribes a
//! connection to broadcasts (notifications `receive`); `broadcast(text)` sends `text` to
//! every subscription, then returns.
//!
//! Configured as the hubs bench server is: the default tokio runtime, jsonrpsee's server
//! defaults (HTTP and WebSocket on one port, 1024 buffered messages per connection) but
//! for its connection limit (100 by default, raised for the 10,000-connection scenarios),
//! broadcasts through a tokio broadcast channel, as jsonrpsee's own examples do. `jsonrpc-server --port 5003` prints `listening on http://127.0.0.1:<port>`.

use jsonrpsee::server::{RpcModule, Server, ServerConfig};
use jsonrpsee::types::ErrorObjectOwned;
use tokio::sync::broadcast;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = <hubs_bench::PortArgs as clap::Parser>::parse()
        .port
        .unwrap_or(5003);
    let (sender, _) = broadcast::channel::<String>(1024);
    let mut module = RpcModule::new(sender);
    module.register_method("echo", |params, _, _| params.one::<String>())?;
    module.register_method("broadcast", |params, sender, _| {
        let text: String = params.one()?;
        let _ = sender.send(text);
        Ok::<_, ErrorObjectOwned>(())
    })?;
    module.register_subscription(
        "subscribe_receive",
        "receive",
        "unsubscribe_receive",
        |_, pending, sender, _| async move {
            let mut receiver = sender.subscribe();
            let sink = pending.accept().await?;
            loop {
                match receiver.recv().await {
                    Ok(text) => {
                        let message = serde_json::value::to_raw_value(&text)?;
                        if sink.send(message).await.is_err() {
                            return Ok(());
                        }
                    }
                    // A subscriber that fell behind loses broadcasts: the load generator
                    // counts them as lost.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        },
    )?;
    // jsonrpsee accepts 100 connections by default; the scenarios hold up to 10,000.
    let config = ServerConfig::builder().max_connections(100_000).build();
    let server = Server::builder()
        .set_config(config)
        .build(("127.0.0.1", port))
        .await?;
    println!("listening on http://{}", server.local_addr()?);
    let handle = server.start(module);
    handle.stopped().await;
    Ok(())
}
