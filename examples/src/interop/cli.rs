//! The interop server's command line, shared by `examples/src/bin/interop.rs` and the
//! copy of it the fault tests start (`tests/src/bin/interop-example.rs`), so that both run
//! exactly this.

use std::time::Duration;

use super::{Settings, Tokens, router, server, server_with_redis};

/// The interop test server of CONTRACT.md.
#[derive(clap::Parser)]
pub struct Args {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,
    /// The keep-alive interval, in seconds (fractions allowed).
    #[arg(long = "keep-alive", value_name = "SECONDS")]
    pub keep_alive: Option<f64>,
    /// Scale out over this Redis server (`redis://127.0.0.1:6379/`).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// The HS256 key of the JWTs `/token` issues and the authorized hubs accept.
    #[arg(long = "jwt-key", value_name = "SECRET")]
    pub jwt_key: Option<String>,
    /// Serve the Azure SignalR Service data-plane REST API under `/api`, for callers
    /// whose bearer JWT is signed (HS256) with this access key.
    #[arg(long = "access-key", value_name = "KEY", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub access_key: Option<String>,
}

/// Runs the server `args` describe until the process ends.
pub async fn run(args: Args) -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let mut settings = Settings {
        metrics: Some(crate::metrics::install().map_err(std::io::Error::other)?),
        ..Settings::default()
    };
    if let Some(seconds) = args.keep_alive {
        settings.keep_alive = Duration::from_secs_f64(seconds);
    }
    if let Some(key) = &args.jwt_key {
        settings.tokens = Tokens::with_key(key.as_bytes());
    }
    let mut hubs = match &args.redis {
        Some(url) => server_with_redis(&settings, url)
            .await
            .map_err(std::io::Error::other)?,
        None => server(&settings),
    };
    if let Some(key) = &args.access_key {
        hubs = hubs.rest_api(key);
    }
    let app = router(&settings, hubs.build()?)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    hubs::serve(listener, app, hubs::ServeOptions::default()).await
}
