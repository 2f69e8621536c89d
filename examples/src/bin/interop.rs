//! The interop test server.
//!
//! ```text
//! cargo run --release -p hubs-examples --bin interop -- --port 5000 [--keep-alive SECONDS] [--redis redis://127.0.0.1:6379/] [--jwt-key SECRET]
//! ```
//!
//! `PORT` in the environment works too. It prints `listening on http://127.0.0.1:<port>`
//! once it accepts connections, and serves its metrics at `GET /metrics`.

/// mimalloc (v2) gives freed memory back to the system: after a churn of connections the
/// process shrinks to near where it started, where glibc's malloc keeps the pages of its
/// per-thread arenas (DESIGN.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    hubs_examples::interop::cli::run(clap::Parser::parse()).await
}
