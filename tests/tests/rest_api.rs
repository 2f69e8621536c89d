//! The Azure SignalR Service data-plane REST API served by the interop example
//! (`Server::rest_api`), driven by `tests/interop/python/test_rest_api.py` (plain HTTP with
//! `requests` and PyJWT, written from the published API) with official JavaScript clients
//! connected (`tests/interop/python/rest_clients.mjs`): once on one server, and once across
//! two servers on a real `redis-server`, the REST calls on one and the clients on the other.
//! `scripts/test` installs the clients, the Python packages and Debian's redis-server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The access key the servers are given and the script signs with.
const KEY: &str = "an access key for the REST API tests, long enough";

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Serves `hubs` (the interop example's, with the REST API) on a free port.
async fn serve(settings: &hubs_examples::interop::Settings, hubs: hubs::Server) -> SocketAddr {
    let hubs = hubs.rest_api(KEY).build().expect("builds");
    let app = hubs_examples::interop::router(settings, hubs).expect("the app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(hubs::serve(listener, app, hubs::ServeOptions::default()));
    addr
}

fn settings() -> hubs_examples::interop::Settings {
    hubs_examples::interop::Settings {
        keep_alive: Duration::from_secs(1),
        long_poll_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Runs the script with the REST calls on `rest` and the clients on `clients`.
async fn script(rest: SocketAddr, clients: SocketAddr) {
    let dir = interop_dir();
    let python = dir.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Python packages are not installed: run `bash scripts/test` (it creates tests/interop/.venv)"
    );
    assert!(
        dir.join("node_modules/@microsoft/signalr").is_dir(),
        "the official client is not installed: run `bash scripts/test` (it runs `npm ci` in tests/interop)"
    );
    let child = Command::new(python)
        .arg("python/test_rest_api.py")
        .current_dir(&dir)
        .env("HUBS_REST_URL", format!("http://{rest}"))
        .env("HUBS_CLIENT_URL", format!("http://{clients}"))
        .env("HUBS_ACCESS_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts python");
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the script finishes in 180 s")
        .expect("waits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "test_rest_api.py failed: {}\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_on_one_server() {
    let settings = settings();
    let addr = serve(&settings, hubs_examples::interop::server(&settings)).await;
    script(addr, addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_across_two_servers_on_redis() {
    let redis = Redis::start().await;
    let settings = settings();
    let node = || async {
        let hubs = hubs_examples::interop::server_with_redis(&settings, &redis.url())
            .await
            .expect("connects to Redis");
        serve(&settings, hubs).await
    };
    let (rest, clients) = (node().await, node().await);
    script(rest, clients).await;
}

/// The server without an access key has no `/api`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_key_no_api() {
    let addr = hubs_tests::interop_server().await;
    let (mut stream, request) = (
        tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects"),
        "HEAD /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("reads");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

/// A Redis server on a free loopback port, stopped when dropped.
struct Redis {
    _child: Child,
    port: u16,
}

impl Redis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("redis-server is not installed: run `bash scripts/test` (it installs Debian's redis-server)");
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starts redis-server");
        tokio::time::timeout(Duration::from_secs(10), async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("redis-server accepts connections");
        Self {
            _child: child,
            port,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}
