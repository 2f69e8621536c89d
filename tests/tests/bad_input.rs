//! Bad input: each misbehaving client gets the official answer (an error, a close), while
//! a second client keeps working and loses nothing it was promised.

use hubs::protocol::{Close, Completion, HubMessage, Outcome, Protocol};
use hubs_tests::{RawClient, interop_server};

/// `client` invokes Echo `n` times and gets every answer back, in order.
async fn still_serves(client: &mut RawClient, n: usize) {
    let mut ids = Vec::new();
    for i in 0..n {
        let value = client.value(format!("m{i}"));
        ids.push(client.invoke("Echo", vec![value]).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        match client.next_message().await {
            Some(HubMessage::Completion(Completion {
                invocation_id,
                outcome: Outcome::Result(value),
                ..
            })) => {
                assert_eq!(invocation_id, id);
                assert_eq!(
                    value.deserialize::<String>().expect("string"),
                    format!("m{i}")
                );
            }
            other => panic!("expected the Echo completion {id}, got {other:?}"),
        }
    }
}

fn close_error(message: Option<HubMessage>) -> Close {
    match message {
        Some(HubMessage::Close(close)) => close,
        other => panic!("expected a Close message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_closes_only_that_connection() {
    let addr = interop_server().await;
    let mut good = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let mut bad = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    bad.send_text(&b"{\"type\":1,\"target\":\x1e"[..]).await;
    let close = close_error(bad.next_message().await);
    assert!(close.allow_reconnect);
    let error = close.error.expect("an error");
    assert!(
        error.starts_with("Connection closed with an error. InvalidDataException: "),
        "{error}"
    );
    assert!(bad.closed().await);
    still_serves(&mut good, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messagepack_closes_only_that_connection() {
    let addr = interop_server().await;
    let mut good = RawClient::connect(addr, "/testhub", Protocol::MessagePack).await;
    let mut bad = RawClient::connect(addr, "/testhub", Protocol::MessagePack).await;
    // A length prefix of 3, then a map where the message array should be.
    bad.send_binary(vec![0x03, 0x81, 0xa1, 0x61]).await;
    let close = close_error(bad.next_message().await);
    assert!(
        close
            .error
            .expect("an error")
            .starts_with("Connection closed with an error.")
    );
    assert!(bad.closed().await);
    still_serves(&mut good, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_types_are_ignored() {
    let addr = interop_server().await;
    let mut client = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    client
        .send_text(&b"{\"type\":42,\"future\":true}\x1e"[..])
        .await;
    still_serves(&mut client, 3).await;
    let mut client = RawClient::connect(addr, "/testhub", Protocol::MessagePack).await;
    client.send_binary(vec![0x02, 0x91, 0x2a]).await;
    still_serves(&mut client, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_handshake_gets_the_official_error() {
    let addr = interop_server().await;
    let mut good = RawClient::connect(addr, "/testhub", Protocol::Json).await;

    let mut bad = RawClient::connect_raw(addr, "/testhub", Protocol::Json).await;
    bad.send_text(&b"hello there\x1e"[..]).await;
    let response = String::from_utf8(bad.next_frame().await.expect("a response")).expect("text");
    assert!(
        response
            .starts_with("{\"error\":\"An unexpected error occurred during connection handshake."),
        "{response}"
    );
    assert!(bad.closed().await);

    let mut unknown = RawClient::connect_raw(addr, "/testhub", Protocol::Json).await;
    unknown
        .send_text(&b"{\"protocol\":\"xml\",\"version\":1}\x1e"[..])
        .await;
    let response = unknown.next_frame().await.expect("a response");
    assert_eq!(
        response,
        b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e"
    );
    assert!(unknown.closed().await);

    still_serves(&mut good, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_closes_with_the_official_text() {
    let addr = interop_server().await;
    let mut good = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let mut bad = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let big = "x".repeat(40 * 1024);
    let argument = bad.value(big);
    bad.invoke("Echo", vec![argument]).await;
    let close = close_error(bad.next_message().await);
    assert_eq!(
        close.error.as_deref(),
        Some(
            "Connection closed with an error. InvalidDataException: The maximum message size of 32768B was exceeded. The message size can be configured in AddHubOptions."
        )
    );
    assert!(bad.closed().await);
    still_serves(&mut good, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_errors_keep_the_connection_open() {
    let addr = interop_server().await;
    for protocol in Protocol::ALL {
        let mut client = RawClient::connect(addr, "/testhub", protocol).await;
        let cases = [
            (
                "NoSuchMethodXyz",
                vec![],
                "Failed to invoke 'NoSuchMethodXyz' due to an error on the server. HubException: Method does not exist.".to_owned(),
            ),
            (
                "Echo",
                vec![],
                "Failed to invoke 'Echo' due to an error on the server. InvalidDataException: Invocation provides 0 argument(s) but target expects 1.".to_owned(),
            ),
            (
                "ThrowException",
                vec![client.value("boom")],
                "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: boom".to_owned(),
            ),
        ];
        for (target, arguments, expected) in cases {
            let id = client.invoke(target, arguments).await;
            match client.next_message().await {
                Some(HubMessage::Completion(Completion {
                    invocation_id,
                    outcome: Outcome::Error(error),
                    ..
                })) => {
                    assert_eq!(invocation_id, id);
                    assert_eq!(error, expected);
                }
                other => panic!("expected an error completion, got {other:?}"),
            }
        }
        // Wrong argument type: only the prefix is fixed.
        let value = client.value(vec![1, 2]);
        client.invoke("Echo", vec![value]).await;
        match client.next_message().await {
            Some(HubMessage::Completion(Completion {
                outcome: Outcome::Error(error),
                ..
            })) => assert!(
                error.starts_with("Failed to invoke 'Echo' due to an error on the server."),
                "{error}"
            ),
            other => panic!("expected an error completion, got {other:?}"),
        }
        // Names match without regard to case.
        let value = client.value("hi");
        client.invoke("eCHO", vec![value]).await;
        assert!(matches!(
            client.next_message().await,
            Some(HubMessage::Completion(Completion {
                outcome: Outcome::Result(_),
                ..
            }))
        ));
        still_serves(&mut client, 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_ends_the_connection_with_a_close_reply() {
    let addr = interop_server().await;
    let mut client = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    client.send(&HubMessage::Close(Close::default())).await;
    assert_eq!(
        client.next_message().await,
        Some(HubMessage::Close(Close::default()))
    );
    assert!(client.closed().await);
}
