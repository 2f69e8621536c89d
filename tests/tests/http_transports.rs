//! Long polling and CORS at the HTTP level: the status codes of the official server for
//! the first poll, held polls, superseded polls, DELETE, ended connections, unknown ids and
//! oversize bodies. (The official client drives SSE and long polling end to end in
//! `interop.rs`.)

use std::net::SocketAddr;

use hubs_tests::{http, http_with_body, interop_server};

async fn negotiate(addr: SocketAddr) -> String {
    let (status, _, body) = http(addr, "POST", "/testhub/negotiate?negotiateVersion=1", &[]).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["connectionToken"].as_str().expect("token").to_owned()
}

async fn post(addr: SocketAddr, token: &str, body: &[u8]) -> u16 {
    http_with_body(addr, "POST", &format!("/testhub?id={token}"), &[], body)
        .await
        .0
}

async fn poll(addr: SocketAddr, token: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", &format!("/testhub?id={token}&_=1"), &[]).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_polling_session_from_first_poll_to_delete() {
    let addr = interop_server().await;
    let token = negotiate(addr).await;

    // The first poll returns at once, empty, and activates the connection.
    let (status, head, body) = http(addr, "GET", &format!("/testhub?id={token}"), &[]).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/octet-stream")
    );

    assert_eq!(
        post(addr, &token, b"{\"protocol\":\"json\",\"version\":1}\x1e").await,
        200
    );
    assert_eq!(poll(addr, &token).await, (200, "{}\x1e".to_owned()));
    assert_eq!(
        post(
            addr,
            &token,
            b"{\"type\":1,\"invocationId\":\"0\",\"target\":\"Echo\",\"arguments\":[\"lp\"]}\x1e"
        )
        .await,
        200
    );
    assert_eq!(
        poll(addr, &token).await,
        (
            200,
            "{\"type\":3,\"invocationId\":\"0\",\"result\":\"lp\"}\x1e".to_owned()
        )
    );

    // A newer poll supersedes a pending one, which gets 204.
    let older = tokio::spawn({
        let token = token.clone();
        async move { poll(addr, &token).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let newer = tokio::spawn({
        let token = token.clone();
        async move { poll(addr, &token).await }
    });
    assert_eq!(older.await.expect("task").0, 204);
    assert_eq!(
        post(addr, &token, b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"again\"]}\x1e").await,
        200
    );
    assert_eq!(
        newer.await.expect("task"),
        (
            200,
            "{\"type\":3,\"invocationId\":\"1\",\"result\":\"again\"}\x1e".to_owned()
        )
    );

    // DELETE ends it: 202, then polls get 204 and posts 404.
    let (status, _, _) = http(addr, "DELETE", &format!("/testhub?id={token}"), &[]).await;
    assert_eq!(status, 202);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = poll(addr, &token).await;
    assert!(status == 204 || status == 200, "{status}");
    let (status, _) = poll(addr, &token).await;
    assert_eq!(status, 204);
    assert_eq!(post(addr, &token, b"{\"type\":6}\x1e").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_poll_returns_empty_after_the_poll_timeout() {
    let addr = interop_server().await;
    let token = negotiate(addr).await;
    assert_eq!(poll(addr, &token).await.0, 200);
    assert_eq!(
        post(addr, &token, b"{\"protocol\":\"json\",\"version\":1}\x1e").await,
        200
    );
    assert_eq!(poll(addr, &token).await, (200, "{}\x1e".to_owned()));
    // The interop test server holds polls for 5 s; long polling has no pings.
    assert_eq!(poll(addr, &token).await, (200, String::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_official_answers() {
    let addr = interop_server().await;
    assert_eq!(poll(addr, "unknown").await.0, 404);
    assert_eq!(post(addr, "unknown", b"x").await, 404);

    let token = negotiate(addr).await;
    assert_eq!(poll(addr, &token).await.0, 200);
    assert_eq!(
        post(addr, &token, b"{\"protocol\":\"json\",\"version\":1}\x1e").await,
        200
    );
    assert_eq!(poll(addr, &token).await, (200, "{}\x1e".to_owned()));
    // A POST is read as it comes, whatever its size: 2 MiB of small messages (the official
    // clients coalesce queued sends into one POST) is taken.
    let ping = b"{\"type\":6}\x1e";
    let many = ping.repeat((2 << 20) / ping.len());
    assert_eq!(post(addr, &token, &many).await, 200);
    // One hub message over the limit ends its connection with the official text.
    let other = negotiate(addr).await;
    assert_eq!(poll(addr, &other).await.0, 200);
    assert_eq!(
        post(addr, &other, b"{\"protocol\":\"json\",\"version\":1}\x1e").await,
        200
    );
    assert_eq!(poll(addr, &other).await, (200, "{}\x1e".to_owned()));
    let posted = post(addr, &other, &vec![b'x'; 2 << 20]).await;
    let (status, closed) = poll(addr, &other).await;
    assert!(
        closed.contains("The maximum message size of 32768B was exceeded"),
        "POST {posted}, poll {status}: {closed}"
    );
    // Switching transports mid-connection is refused.
    let (status, _, body) = http(
        addr,
        "GET",
        &format!("/testhub?id={token}"),
        &[("Accept", "text/event-stream")],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Cannot change transports mid-connection")
    );

    // The no-WebSockets hub offers the other two, and refuses WebSockets.
    let (_, _, body) = http(
        addr,
        "POST",
        "/testhub-nowebsockets/negotiate?negotiateVersion=1",
        &[],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let offered: Vec<_> = json["availableTransports"]
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["transport"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(offered, ["ServerSentEvents", "LongPolling"]);
    let (status, _, body) = http(
        addr,
        "GET",
        "/testhub-nowebsockets",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            404,
            "WebSockets transport not supported by this end point type"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_responses_echo_the_origin() {
    let addr = interop_server().await;
    let (status, head, _) = http(
        addr,
        "OPTIONS",
        "/testhub/negotiate?negotiateVersion=1",
        &[
            ("Origin", "http://page.example:8080"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "x-requested-with, x-signalr-user-agent",
            ),
        ],
    )
    .await;
    let head = head.to_ascii_lowercase();
    assert_eq!(status, 204);
    assert!(
        head.contains("access-control-allow-origin: http://page.example:8080"),
        "{head}"
    );
    assert!(head.contains("access-control-allow-credentials: true"));
    assert!(head.contains("access-control-allow-methods: get, post, delete"));
    assert!(head.contains("x-signalr-user-agent"));

    let (status, head, _) = http(
        addr,
        "POST",
        "/testhub/negotiate?negotiateVersion=1",
        &[("Origin", "http://page.example:8080")],
    )
    .await;
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("access-control-allow-origin: http://page.example:8080"));
    assert!(head.contains("set-cookie: testcookie=testvalue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_of_the_example_answers_cross_origin_pages() {
    let addr = interop_server().await;
    let origin = ("Origin", "http://page.example:8080");
    // A page on another origin fetches its token first, then connects.
    for path in [
        "/generateJwtToken",
        "/clientresult/nobody",
        "/no-such-path",
        "/authorizedhub/negotiate",
    ] {
        let (status, head, _) = http(
            addr,
            "OPTIONS",
            path,
            &[
                origin,
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
        )
        .await;
        let head = head.to_ascii_lowercase();
        assert_eq!(status, 204, "{path}");
        assert!(
            head.contains("access-control-allow-origin: http://page.example:8080"),
            "{path}: {head}"
        );
        assert!(head.contains("access-control-allow-headers: x-requested-with, x-signalr-user-agent, authorization, content-type, x-signalr-connection-token"), "{path}: {head}");
        let method = if path.ends_with("negotiate") {
            "POST"
        } else {
            "GET"
        };
        let (status, head, _) = http(addr, method, path, &[origin]).await;
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("access-control-allow-origin: http://page.example:8080"),
            "{path} ({status}): {head}"
        );
        assert_eq!(
            head.matches("access-control-allow-origin").count(),
            1,
            "{path}: once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorized_hub_checks_every_request_for_a_token() {
    let addr = interop_server().await;
    let negotiate = "/authorizedhub/negotiate?negotiateVersion=1";

    // No token, a token never issued, a malformed header: 401 with an empty body, whose
    // reason phrase the official client quotes.
    for headers in [
        &[][..],
        &[("Authorization", "Bearer hubs.forged")][..],
        &[("Authorization", "Basic dXNlcjpwYXNz")][..],
    ] {
        let (status, head, body) = http(addr, "POST", negotiate, headers).await;
        assert_eq!((status, body.as_str()), (401, ""), "{headers:?}");
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized"), "{head}");
    }

    let (status, _, token) = http(addr, "GET", "/generateJwtToken", &[]).await;
    assert_eq!(status, 200);
    let bearer = format!("Bearer {token}");

    // In the header (Node, long polling) or the query (browsers' WebSockets and SSE).
    let (status, _, body) = http(addr, "POST", negotiate, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}");
    let connection: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = connection["connectionToken"].as_str().expect("token");
    let (status, _, _) = http(
        addr,
        "POST",
        &format!("{negotiate}&access_token={token}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);

    // Transport requests are checked too, not only negotiate.
    let poll = format!("/authorizedhub?id={id}");
    assert_eq!(http(addr, "GET", &poll, &[]).await.0, 401);
    assert_eq!(
        http(addr, "GET", &poll, &[("Authorization", &bearer)])
            .await
            .0,
        200,
        "the first poll with the token"
    );
    assert_eq!(
        http_with_body(
            addr,
            "POST",
            &poll,
            &[],
            b"{\"protocol\":\"json\",\"version\":1}\x1e"
        )
        .await
        .0,
        401
    );

    // Other hubs stay open.
    assert_eq!(
        http(addr, "POST", "/testhub/negotiate?negotiateVersion=1", &[])
            .await
            .0,
        200
    );
}

/// RFC 7519: a token is valid only *before* its `exp`. With no leeway, a connection closed
/// at its token's expiry cannot come back with the same token, not even within the second
/// of `exp`, on any transport (the close timer and the check agree on the instant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expires_at_its_exp_on_every_transport() {
    use std::time::{SystemTime, UNIX_EPOCH};

    use hubs::protocol::{HubMessage, Protocol};
    use hubs_tests::RawClient;

    let seconds = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
    };
    let addr = interop_server().await;
    let negotiate = "/authorizedhub/negotiate?negotiateVersion=1";
    let before = seconds();
    let (status, _, token) = http(addr, "GET", "/generateJwtToken?lifetime=2", &[]).await;
    let after = seconds();
    assert_eq!(status, 200);
    // The issuer writes exp = its whole second + 2.
    let (earliest, latest) = (before.floor() + 2.0, after.floor() + 2.0);
    let bearer = format!("Bearer {token}");
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (status, _, body) = http(addr, "POST", negotiate, &[("Authorization", &bearer)]).await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        ids.push(json["connectionToken"].as_str().expect("token").to_owned());
    }

    let mut live = RawClient::connect(
        addr,
        &format!("/authorizedhub?id={}&access_token={token}", ids[0]),
        Protocol::Json,
    )
    .await;
    let close = loop {
        match live
            .next_message()
            .await
            .expect("a close before the socket ends")
        {
            HubMessage::Close(close) => break close,
            _ => continue,
        }
    };
    let closed_at = seconds();
    assert!(
        close
            .error
            .as_deref()
            .is_some_and(|e| e.contains("expired")),
        "{close:?}"
    );
    assert!(!close.allow_reconnect, "{close:?}");
    assert!(
        closed_at >= earliest && closed_at < latest + 0.5,
        "closed at {closed_at}, exp in [{earliest}, {latest}]"
    );

    // Within the second after the close, every start with the token is refused (those
    // that would hang if accepted last).
    let query = |id: &str| format!("/authorizedhub?id={id}&access_token={token}");
    let negotiated = http(addr, "POST", negotiate, &[("Authorization", &bearer)]).await;
    assert_eq!(negotiated.0, 401, "negotiate");
    assert_eq!(
        http(addr, "GET", &query(&ids[3]), &[]).await.0,
        401,
        "long polling"
    );
    let sse = http(
        addr,
        "GET",
        &query(&ids[2]),
        &[("Accept", "text/event-stream")],
    )
    .await;
    assert_eq!(sse.0, 401, "SSE");
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    assert_eq!(
        http(addr, "GET", &query(&ids[1]), &upgrade).await.0,
        401,
        "WebSocket"
    );
    let done = seconds();
    assert!(done < closed_at + 1.0, "all within the second ({done})");
}
