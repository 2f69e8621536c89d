//! End-to-end: the official JavaScript client (on each transport) and the Python `pysignalr`
//! client against the interop example, served in-process on 127.0.0.1. `scripts/test` installs the clients.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// One client suite at a time: they are timing-sensitive and this machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(mut command: Command, what: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 300 s"))
        .expect("waits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{what} failed: {}\n{stdout}\n{stderr}",
        output.status
    );
}

async fn javascript_client(transport: &str) {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/@microsoft/signalr").is_dir(),
        "the official client is not installed: run `bash scripts/test` (it runs `npm ci` in tests/interop)"
    );
    let addr = hubs_tests::interop_server().await;
    let mut command = Command::new("node");
    command
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg("js/")
        .current_dir(&dir)
        .env("HUBS_URL", format!("http://{addr}"))
        .env("HUBS_TRANSPORT", transport);
    run(command, &format!("node --test over {transport}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_javascript_client_over_websockets() {
    javascript_client("WebSockets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_javascript_client_over_server_sent_events() {
    javascript_client("ServerSentEvents").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_javascript_client_over_long_polling() {
    javascript_client("LongPolling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pysignalr_client_over_websockets() {
    let dir = interop_dir();
    let python = dir.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "pysignalr is not installed: run `bash scripts/test` (it creates tests/interop/.venv)"
    );
    let addr = hubs_tests::interop_server().await;
    let mut command = Command::new(python);
    command
        .arg("python/test_pysignalr.py")
        .current_dir(&dir)
        .env("HUBS_URL", format!("http://{addr}"));
    run(command, "pysignalr test").await;
}
