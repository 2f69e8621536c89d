//! The interop example server (`examples/src/bin/interop.rs`), the same code and allocator,
//! built by `cargo test` for the fault tests that start it as a child process
//! (`floods::the_example_server_gives_memory_back_after_churn`): a binary of this package
//! is built with the tests' own features, where a nested `cargo build` of the example
//! rebuilt the workspace with the features of a plain build (two minutes of CI).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    hubs_examples::interop::cli::run(clap::Parser::parse()).await
}
