//! The chat server with its browser page, on the in-memory default.
//!
//! ```text
//! bash scripts/chat            # installs the browser client, then runs this
//! cargo run --release -p hubs-examples --bin chat -- --port 5000 [--redis redis://127.0.0.1:6379/]
//! ```
//!
//! Its metrics are at `GET /metrics`, in the Prometheus text format.

use hubs_examples::chat::{app, app_with_redis, default_client_script};

/// mimalloc (v2) gives freed memory back to the system: after a churn of connections the
/// process shrinks to near where it started, where glibc's malloc keeps the pages of its
/// per-thread arenas (DESIGN.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The chat server and its page.
#[derive(clap::Parser)]
struct Args {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 5000)]
    port: u16,
    /// Scale out over this Redis server (`redis://127.0.0.1:6379/`).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = <Args as clap::Parser>::parse();
    let metrics = hubs_examples::metrics::install().map_err(std::io::Error::other)?;
    let script = default_client_script();
    if !script.is_file() {
        eprintln!(
            "warning: {} is missing; run `npm ci --prefix examples/chat` (scripts/chat does)",
            script.display()
        );
    }
    let app = match &args.redis {
        Some(url) => app_with_redis(script, url)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        None => app(script)?,
    }
    .merge(hubs_examples::metrics::router(metrics));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("chat: open http://{}/ in a browser", listener.local_addr()?);
    hubs::serve(listener, app, hubs::ServeOptions::default()).await
}
