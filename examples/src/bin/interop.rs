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

/// The interop test server of CONTRACT.md.
#[derive(clap::Parser)]
struct Args {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 5000)]
    port: u16,
    /// The keep-alive interval, in seconds (fractions allowed).
    #[arg(long = "keep-alive", value_name = "SECONDS")]
    keep_alive: Option<f64>,
    /// Scale out over this Redis server (`redis://127.0.0.1:6379/`).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// The HS256 key of the JWTs `/token` issues and the authorized hubs accept.
    #[arg(long = "jwt-key", value_name = "SECRET")]
    jwt_key: Option<String>,
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
    let mut settings = Settings {
        metrics: Some(hubs_examples::metrics::install().map_err(std::io::Error::other)?),
        ..Settings::default()
    };
    if let Some(seconds) = args.keep_alive {
        settings.keep_alive = Duration::from_secs_f64(seconds);
    }
    if let Some(key) = &args.jwt_key {
        settings.tokens = hubs_examples::interop::Tokens::with_key(key.as_bytes());
    }
    let hubs = match &args.redis {
        Some(url) => server_with_redis(&settings, url)
            .await
            .map_err(std::io::Error::other)?,
        None => server(&settings),
    };
    let app = router(&settings, hubs.build()?)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    hubs::serve(listener, app, hubs::ServeOptions::default()).await
}
