//! The Rust client against a SignalR server that is not ours: the Python `aiosignalr`
//! package (PyPI) hosting a small hub (`tests/interop/python/aiosignalr_server.py`).
//!
//! aiosignalr 0.1.1 deviates from the protocol in places; the client follows the
//! protocol, and these cases are skipped, each for a stated reason:
//! * MessagePack results, stream items and error completions: aiosignalr writes the
//!   headers slot as the integer 128 (`cc 80`) instead of an empty map (`80`), which the
//!   protocol (and the official JavaScript client: `Invalid headers.`) rejects. Only its
//!   server-to-client invocations are well-formed, so MessagePack is tested with `send`
//!   and a handler.
//! * Long polling: aiosignalr holds the first poll instead of answering it at once, so a
//!   client that waits for it (as the official ones do) cannot start.
//! * Error texts: a `HubException` reaches the client as its bare message, without the
//!   official `An unexpected error occurred invoking '…' on the server. HubException:`
//!   prefix; the test checks that the client passes the server's text through verbatim.

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use hubs::TransportKind;
use hubs::connection::{HubConnection, InvokeError};
use hubs::protocol::Protocol;
use hubs_tests::STEP;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Starts the aiosignalr server and returns it with its hub URL.
async fn aiosignalr() -> (Child, String) {
    let interop = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    let python = interop.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "aiosignalr is not installed: run `bash scripts/test` (it creates tests/interop/.venv)"
    );
    let mut child = Command::new(python)
        .arg(interop.join("python/aiosignalr_server.py"))
        .arg("0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starts the aiosignalr server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server starts in time")
        .expect("reads")
        .expect("a line");
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_owned();
    (child, format!("{base}/hub"))
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_over_websockets_and_server_sent_events() {
    let (_server, url) = aiosignalr().await;
    for transport in [TransportKind::WebSockets, TransportKind::ServerSentEvents] {
        let what = transport.name();
        let connection = HubConnection::builder(url.clone())
            .transports([transport])
            .build();
        let (notified_tx, mut notified) = mpsc::unbounded_channel();
        connection.on("Notified", move |(text,): (String,)| {
            let notified_tx = notified_tx.clone();
            async move {
                let _ = notified_tx.send(text);
            }
        });
        within(what, connection.start())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(connection.transport(), Some(transport));

        let echoed: String = within(what, connection.invoke("Echo", ("from rust",)))
            .await
            .expect("echo");
        assert_eq!(echoed, "from rust");
        let sum: i64 = within(what, connection.invoke("Add", (2, 40)))
            .await
            .expect("add");
        assert_eq!(sum, 42);

        match within(what, connection.invoke::<()>("Fail", ("nope",))).await {
            Err(InvokeError::Server(text)) => {
                assert_eq!(text, "nope", "the server's text, verbatim")
            }
            other => panic!("{what}: expected the server's error, got {other:?}"),
        }

        let () = within(what, connection.invoke("Notify", ("hi",)))
            .await
            .expect("notify");
        assert_eq!(within(what, notified.recv()).await.as_deref(), Some("hi"));

        let counted: Vec<i64> = within(
            what,
            connection
                .stream::<i64>("Counter", (4,))
                .await
                .expect("stream")
                .map(|i| i.expect("item"))
                .collect(),
        )
        .await;
        assert_eq!(counted, [0, 1, 2, 3]);

        within(what, connection.stop()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messagepack_server_to_client_calls() {
    let (_server, url) = aiosignalr().await;
    let connection = HubConnection::builder(url)
        .transports([TransportKind::WebSockets])
        .protocol(Protocol::MessagePack)
        .build();
    let (notified_tx, mut notified) = mpsc::unbounded_channel();
    connection.on("Notified", move |(text,): (String,)| {
        let notified_tx = notified_tx.clone();
        async move {
            let _ = notified_tx.send(text);
        }
    });
    within("start", connection.start()).await.expect("starts");
    within("send", connection.send("Notify", ("packed",)))
        .await
        .expect("sends");
    assert_eq!(
        within("notified", notified.recv()).await.as_deref(),
        Some("packed")
    );
    connection.stop().await;
}
