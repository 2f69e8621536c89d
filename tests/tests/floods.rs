//! Floods and churn, against a server in a child process (its memory its own):
//! - a flood of unused negotiates never locks out a real client, and its memory comes back;
//! - 500 clients at once connecting, joining one of 50 groups, echoing and leaving (half
//!   by a clean close, half by a reset), then a settle: the server's live heap, counted by
//!   this binary's allocator, comes back to where it started (nothing leaks, no table
//!   keeps its peak size), and so does the RSS of the example binary.

use std::alloc::System;
use std::time::Duration;

use hubs_tests::child::ServerProcess;
use hubs_tests::churn::churn;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// The system allocator, counting what it holds for the program (stats_alloc: a counting
/// wrapper, so that this test needs no unsafe code of its own).
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes the program holds now.
fn live() -> i64 {
    let stats = ALLOCATOR.stats();
    // Reallocations are already in both (growth allocated, shrinking deallocated).
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// Not a test of its own: the server [`ServerProcess`] runs in a child process, reporting
/// its live heap on `stats`.
#[test]
#[ignore = "run by the churn test as a child process"]
fn child_server() {
    hubs_tests::child::serve_testhub_with(|| format!("live={}", live()));
}

/// How long the churn runs and the settle after it lasts: 60 s and 20 s, or
/// `CHURN_SECONDS` and `CHURN_SETTLE` (for shorter runs while investigating).
fn churn_and_settle() -> (Duration, Duration) {
    let seconds = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(default), Duration::from_secs)
    };
    (seconds("CHURN_SECONDS", 60), seconds("CHURN_SETTLE", 20))
}

async fn live_heap(server: &mut ServerProcess) -> i64 {
    let line = server
        .command("stats", "stats:", Duration::from_secs(10))
        .await;
    line.trim_start_matches("stats: live=")
        .trim()
        .parse()
        .expect("a byte count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_heap_comes_back_after_churn() {
    let mut server = ServerProcess::start(None).await;
    let (run, settle) = churn_and_settle();
    // A first round warms up what is made once (runtime workers, lazy statics).
    let warm = churn(server.addr, "/testhub", 50, 50, Duration::from_secs(2)).await;
    assert_eq!(warm.failures, 0, "{warm:?}");
    tokio::time::sleep(settle).await;
    let (before, rss_before) = (live_heap(&mut server).await, server.rss_kib());

    let churned = churn(server.addr, "/testhub", 500, 50, run).await;
    let (during, peak) = (live_heap(&mut server).await, server.peak_rss_kib());
    tokio::time::sleep(settle).await;
    let (after, rss_after) = (live_heap(&mut server).await, server.rss_kib());
    println!(
        "churn: {} cycles, {} failed; live heap {before} B before, {during} B at the end, {after} B after {settle:?} ({:+} B); RSS {rss_before} KiB before, peak {peak} KiB, {rss_after} KiB after",
        churned.cycles,
        churned.failures,
        after - before
    );
    assert_eq!(churned.failures, 0, "{churned:?}");
    assert!(churned.cycles > 500, "{churned:?}");
    assert!(
        after - before < 1 << 20,
        "the live heap grew by {} B ({before} -> {after})",
        after - before
    );
}

/// The interop example server: this package's copy of its binary, which `cargo test`
/// builds with the tests (`tests/src/bin/interop-example.rs`), or the build
/// `HUBS_INTEROP_BINARY` names.
fn interop_binary() -> std::path::PathBuf {
    // Another build of it, for measurements (a release build, another allocator).
    if let Some(path) = std::env::var_os("HUBS_INTEROP_BINARY") {
        return path.into();
    }
    env!("CARGO_BIN_EXE_interop-example").into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_server_gives_memory_back_after_churn() {
    use tokio::io::AsyncBufReadExt;

    let mut server = tokio::process::Command::new(interop_binary())
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts the interop example");
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr: std::net::SocketAddr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("reads") {
            if let Some(addr) = line.strip_prefix("listening on http://") {
                return addr.trim().parse().expect("an address");
            }
        }
        panic!("the interop example ended before listening");
    })
    .await
    .expect("listens in time");
    let pid = server.id().expect("running").to_string();
    let (run, settle) = churn_and_settle();
    let warm = churn(addr, "/testhub", 50, 50, Duration::from_secs(2)).await;
    assert_eq!(warm.failures, 0, "{warm:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = hubs_tests::rss_kib_of(&pid);
    let churned = churn(addr, "/testhub", 500, 50, run).await;
    let peak = hubs_tests::peak_rss_kib_of(&pid);
    tokio::time::sleep(settle).await;
    let after = hubs_tests::rss_kib_of(&pid);
    println!(
        "interop example: {} cycles, {} failed; RSS {before} KiB before, peak {peak} KiB, {after} KiB after {settle:?} ({:+} KiB)",
        churned.cycles,
        churned.failures,
        after as i64 - before as i64
    );
    assert_eq!(churned.failures, 0, "{churned:?}");
    assert!(
        after < before + 10 * 1024,
        "the example kept its memory: {before} KiB -> {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negotiate_flood_never_locks_out_a_real_client() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use hubs::protocol::Protocol;
    use hubs_tests::{churn::cycle, http};

    let mut server = ServerProcess::start(None).await;
    let addr = server.addr;
    let negotiate = "/testhub/negotiate?negotiateVersion=1";
    let token_of = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).expect("json")["connectionToken"]
            .as_str()
            .expect("a token")
            .to_owned()
    };
    let (status, _, body) = http(addr, "POST", negotiate, &[]).await;
    assert_eq!(status, 200);
    let stale = token_of(&body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (heap_before, rss_before) = (live_heap(&mut server).await, server.rss_kib());

    // 20,000 unused negotiates (at least), past the server's cap of 10,000 waiting ones,
    // until the real client is done.
    let (sent, refused, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let (sent, refused, done) = (sent.clone(), refused.clone(), done.clone());
            tokio::spawn(async move {
                while !(done.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) >= 20_000) {
                    if http(addr, "POST", negotiate, &[]).await.0 != 200 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while sent.load(Ordering::Relaxed) < 10_000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cap is reached: from here on every negotiate evicts the oldest unused one.
    let mut succeeded = 0;
    for i in 0..100 {
        let protocol = if i % 2 == 0 {
            Protocol::Json
        } else {
            Protocol::MessagePack
        };
        succeeded +=
            u32::from(cycle(addr, "/testhub", protocol, format!("g{i}"), i % 2 == 1).await);
    }
    let during = sent.load(Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    for one in flood {
        one.await.expect("the flood ran");
    }
    assert_eq!(succeeded, 100, "the real client during the flood");
    assert_eq!(refused.load(Ordering::Relaxed), 0, "no negotiate refused");
    assert!(
        during > 10_000,
        "the client ran during the flood ({during} sent)"
    );

    // The first token was evicted long ago: 404, as an expired one.
    let (status, _, _) = http(addr, "GET", &format!("/testhub?id={stale}"), &[]).await;
    assert_eq!(status, 404, "a stale token");

    // Unused negotiations are forgotten 15 s after they were made.
    tokio::time::sleep(Duration::from_secs(17)).await;
    let (heap_after, rss_after) = (live_heap(&mut server).await, server.rss_kib());
    println!(
        "negotiate flood: {} sent; live heap {heap_before} B before, {heap_after} B after; RSS {rss_before} KiB before, {rss_after} KiB after",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        heap_after - heap_before < 1 << 20,
        "the live heap kept {} B",
        heap_after - heap_before
    );
    assert!(
        rss_after < rss_before + 5 * 1024,
        "RSS {rss_before} KiB -> {rss_after} KiB"
    );
}
