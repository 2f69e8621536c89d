//! Sequences of arbitrary HTTP requests against a server with a hub and a raw endpoint:
//! negotiate (query parsing, versions), the three transports' request paths (ids, POST
//! bodies, polls, DELETE, event streams, upgrades without a socket) and CORS. No panic,
//! no request that hangs, and every answer is a well-formed HTTP status.
//!
//! Input: up to 8 requests, each `method byte, path line, header lines, empty line,
//! body up to 0xFF`. `{t}` in a path stands for the token of the last negotiate.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hubs::{Context, Cors, EndpointOptions, hub, HubOptions, HubService, Server};
use libfuzzer_sys::fuzz_target;

struct Echo;

#[hub]
impl Echo {
    pub fn echo(&self, text: String) -> String {
        text
    }

    pub async fn join(&self, cx: &Context<Self>, group: String) {
        let _ = cx.groups().add(cx.connection_id(), &group).await;
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // A paused clock: timers (poll timeouts, deadlines) fire as soon as nothing else
        // can run, so an input costs no real time, and a request that would wait forever
        // still trips the one-second guard.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

fn service() -> HubService {
    Server::new()
        .cors(Cors::any())
        .max_connections(16)
        .max_pending_negotiations(16)
        .hub_with_endpoint(
            "/hub",
            Echo,
            HubOptions::default().handshake_timeout(Duration::from_millis(20)),
            EndpointOptions::default().long_poll_timeout(Duration::from_millis(5)),
        )
        .connection_handler("/raw", |mut connection| async move {
            while let Some(message) = connection.recv().await {
                if connection.send(message).await.is_err() {
                    break;
                }
            }
        })
        .build()
        .expect("builds")
}

const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "OPTIONS", "PUT"];

/// Splits the next request off `data`.
fn next_request<'a>(
    data: &mut &'a [u8],
) -> Option<(&'static str, &'a [u8], Vec<&'a [u8]>, &'a [u8])> {
    let (&selector, rest) = data.split_first()?;
    let method = METHODS[usize::from(selector) % METHODS.len()];
    let mut lines = rest.splitn(2, |&b| b == b'\n');
    let path = lines.next()?;
    let mut rest = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    loop {
        let mut split = rest.splitn(2, |&b| b == b'\n');
        let line = split.next().unwrap_or_default();
        rest = split.next().unwrap_or_default();
        if line.is_empty() || headers.len() >= 16 {
            break;
        }
        headers.push(line);
    }
    let end = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
    let body = &rest[..end];
    *data = rest.get(end + 1..).unwrap_or_default();
    Some((method, path, headers, body))
}

fuzz_target!(|data: &[u8]| {
    let runtime = runtime();
    let service = service();
    let mut data = data;
    let mut token = String::from("none");
    for _ in 0..8 {
        let Some((method, path, headers, body)) = next_request(&mut data) else {
            break;
        };
        let path = String::from_utf8_lossy(path).replace("{t}", &token);
        let mut builder = http::Request::builder().method(method).uri(path.as_str());
        for header in headers {
            if let Some(colon) = header.iter().position(|&b| b == b':') {
                let (name, value) = header.split_at(colon);
                builder = builder.header(name, value[1..].trim_ascii());
            }
        }
        let Ok(request) = builder.body(Full::new(Bytes::copy_from_slice(body))) else {
            continue;
        };
        let answer = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), async {
                let response = service.handle(request).await;
                let status = response.status();
                // Read what is there at once (an event stream never ends by itself).
                let body =
                    tokio::time::timeout(Duration::from_millis(5), response.into_body().collect())
                        .await;
                (status, body.ok().and_then(Result::ok).map(|b| b.to_bytes()))
            })
            .await
        });
        let (status, body) = answer.expect("a request hung");
        assert!(status.as_u16() >= 100 && status.as_u16() < 600);
        if let Some(body) = body
            && let Ok(text) = std::str::from_utf8(&body)
            && let Some(start) = text.find("\"connectionToken\":\"")
        {
            let rest = &text[start + 19..];
            if let Some(end) = rest.find('"') {
                token = rest[..end].to_owned();
            }
        }
    }
    service.shutdown();
    // Let the connections end.
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
});
