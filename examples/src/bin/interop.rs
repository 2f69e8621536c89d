//! The interop test server.
//!
//! ```text
//! cargo run --release -p hubs-examples --bin interop -- --port 5000 [--keep-alive SECONDS] [--redis redis://127.0.0.1:6379/] [--jwt-key SECRET]
//! ```
//!
//! `PORT` in the environment works too. It prints `listening on http://127.0.0.1:<port>`
//! once it accepts connections, and serves its metrics at `GET /metrics`.

use std::time::Duration;

use hubs_examples::interop::{Settings, router, server, server_with_redis};

/// mimalloc (v2) gives freed memory back to the system: after a churn of connections the
/// process shrinks to near where it started, where glibc's malloc keeps the pages of its
/// per-thread arenas (DESIGN.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!(
        "usage: interop [--port PORT] [--keep-alive SECONDS] [--redis URL] [--jwt-key SECRET]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let mut port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let mut settings = Settings {
        metrics: Some(hubs_examples::metrics::install().map_err(std::io::Error::other)?),
        ..Settings::default()
    };
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--keep-alive" => {
                let seconds: f64 = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage());
                settings.keep_alive = Duration::from_secs_f64(seconds);
            }
            "--redis" => redis = Some(args.next().unwrap_or_else(|| usage())),
            "--jwt-key" => {
                let key = args.next().unwrap_or_else(|| usage());
                settings.tokens = hubs_examples::interop::Tokens::with_key(key.as_bytes());
            }
            _ => usage(),
        }
    }
    let hubs = match &redis {
        Some(url) => server_with_redis(&settings, url)
            .await
            .map_err(std::io::Error::other)?,
        None => server(&settings),
    };
    let app = router(&settings, hubs.build()?)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    hubs::serve(listener, app, hubs::ServeOptions::default()).await
}
