//! The hubs bench hub: `Echo(text) -> text` and `Broadcast(text)` (calls `Receive(text)`
//! on every connection).
//!
//! `bench-server --port 5000` prints `listening on http://127.0.0.1:<port>`.

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
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = hubs_bench::option(&args, "--port", 5000);
    let options = HubOptions::default().max_message_size(Some(64 * 1024));
    let service = Server::new().hub_with("/bench", Bench, options).build()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    service.serve(listener).await
}
