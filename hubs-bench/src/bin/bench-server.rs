//! The hubs bench hub: `Echo(text) -> text` and `Broadcast(text)` (calls `Receive(text)`
//! on every connection).
//!
//! `bench-server --port 5000 [--redis redis://127.0.0.1:6379/]` prints `listening on
//! http://127.0.0.1:<port>`; with `--redis`, servers that share the Redis server share
//! their connections (the backplane).

use hubs::{Context, HubOptions, Server, hub};

struct Bench;

#[hub]
impl Bench {
    pub(crate) fn echo(&self, text: String) -> String {
        text
    }

    pub(crate) async fn broadcast(&self, cx: &Context<Self>, text: String) {
        let _ = cx.clients().all().send("Receive", (text,)).await;
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = <hubs_bench::PortArgs as clap::Parser>::parse();
    let port = args.port.unwrap_or(5000);
    let mut options = HubOptions::default().max_message_size(Some(64 * 1024));
    if let Some(redis) = args.redis {
        let backplane = hubs_redis::RedisLifetimeManager::connect(
            hubs_redis::RedisOptions::new(redis).prefix("bench"),
            "bench",
        )
        .await
        .map_err(std::io::Error::other)?;
        options = options.lifetime_manager(backplane);
    }
    let service = Server::new().hub_with("/bench", Bench, options).build()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    service.serve(listener).await
}
