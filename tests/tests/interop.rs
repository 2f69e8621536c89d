//! End-to-end: the official JavaScript client and the Python `pysignalr` client against the
//! interop example, served in-process on 127.0.0.1. `scripts/test` installs the clients.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

async fn run(mut command: Command, what: &str) {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 120 s"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_javascript_client_over_websockets() {
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
        .env("HUBS_URL", format!("http://{addr}"));
    run(command, "node --test").await;
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
