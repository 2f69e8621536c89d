//! The chat example in a real browser: headless Chromium (Debian's `chromium`) opens the
//! page twice on each transport and checks that messages cross. `scripts/test` installs
//! Chromium and playwright-core.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_in_chromium_on_every_transport() {
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        PathBuf::from(&chromium).is_file(),
        "Chromium is not installed at {chromium}: run `bash scripts/test` (it installs Debian's chromium)"
    );
    let script = hubs_examples::chat::default_client_script();
    assert!(
        script.is_file(),
        "the SignalR browser client is not installed: run `bash scripts/test` (npm ci in examples/chat)"
    );
    let page = hubs_examples::chat::page_dir().join("dist/main.js");
    assert!(
        page.is_file(),
        "the chat page is not compiled: run `bash scripts/test` (npm run build in examples/chat)"
    );
    // Tokens of 6 s: the page refreshes them at 3 s (its line "token refreshed").
    let app = hubs_examples::chat::app_with_token_lifetime(script, Duration::from_secs(6))
        .expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(hubs::serve(listener, app, hubs::ServeOptions::default()));

    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=spec", "browser/"])
        .current_dir(&interop)
        .env("CHAT_URL", format!("http://{addr}"))
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("node runs");
    let output = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the browser test finishes in 4 minutes")
        .expect("waits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "browser test failed\n{stdout}\n{stderr}"
    );
}
