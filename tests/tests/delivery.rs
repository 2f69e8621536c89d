//! Delivery under bursts: every accepted message reaches every healthy receiver, a
//! connection's own replies slow its reading instead of cutting it, a WebSocket message is
//! a stream of hub messages read as it comes, and only a receiver that stays behind is cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hubs::Server;
use hubs::protocol::{HubMessage, Invocation, Protocol};
use hubs_examples::interop::TestHub;
use hubs_tests::child::ServerProcess;
use hubs_tests::{FrameReader, RawClient, serve};

/// Not a test of its own: the server [`ServerProcess`] runs in a child process.
#[test]
#[ignore = "run by the delivery tests as a child process"]
fn child_server() {
    hubs_tests::child::serve_testhub();
}

/// `count` invocations of `Echo` with ids `0..count`, encoded back to back.
fn echo_burst(client: &RawClient, protocol: Protocol, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let message = HubMessage::Invocation(Invocation {
            invocation_id: Some(i.to_string()),
            target: "Echo".to_owned(),
            arguments: vec![client.value(format!("echo-{i}"))],
            ..Default::default()
        });
        protocol.encode(&message, &mut out).expect("encodes");
    }
    out
}

async fn twelve_thousand_in_one_frame(protocol: Protocol) {
    let addr = serve(
        Server::new()
            .hub("/testhub", TestHub)
            .build()
            .expect("builds"),
    )
    .await;
    let mut client = RawClient::connect(addr, "/testhub", protocol).await;
    let burst = echo_burst(&client, protocol, 12_000);
    println!("one frame of {} bytes", burst.len());
    match protocol {
        Protocol::Json => client.send_text(burst).await,
        Protocol::MessagePack => client.send_binary(burst).await,
    }
    let mut next = 0;
    while next < 12_000 {
        match client.next_message().await {
            Some(HubMessage::Completion(completion)) => {
                assert_eq!(completion.invocation_id, next.to_string(), "in order");
                next += 1;
            }
            Some(HubMessage::Close(close)) => panic!("closed after {next}: {close:?}"),
            Some(_) => {}
            None => panic!("the connection ended after {next} completions"),
        }
    }
    // Still open.
    let value = client.value("still here");
    let id = client.invoke("Echo", vec![value]).await;
    loop {
        match client.next_message().await {
            Some(HubMessage::Completion(c)) if c.invocation_id == id => break,
            Some(_) => {}
            None => panic!("closed after the burst"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_thousand_invocations_in_one_json_frame_are_all_answered_in_order() {
    twelve_thousand_in_one_frame(Protocol::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_thousand_invocations_in_one_messagepack_frame_are_all_answered_in_order() {
    twelve_thousand_in_one_frame(Protocol::MessagePack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mb_websocket_message_of_small_hub_messages_is_read_in_bounded_memory() {
    let server = ServerProcess::start(None).await;
    let mut client = RawClient::connect(server.addr, "/testhub", Protocol::Json).await;
    // Non-blocking Echo calls (no answer), ~100 bytes each, 16 MB in one WebSocket message.
    let one = format!(
        "{{\"type\":1,\"target\":\"Echo\",\"arguments\":[\"{}\"]}}\u{1e}",
        "m".repeat(50)
    );
    let count = (16 << 20) / one.len();
    let message = one.repeat(count);
    // Warm up the server (allocator, runtime), then measure its peak from here.
    let value = client.value("warm");
    let id = client.invoke("Echo", vec![value]).await;
    while !matches!(client.next_message().await, Some(HubMessage::Completion(c)) if c.invocation_id == id)
    {
    }
    let before = server.peak_rss_kib();
    client.send_text(message).await;
    // Answered after every one of them was read.
    let value = client.value("after");
    let id = client.invoke("Echo", vec![value]).await;
    loop {
        match client.next_message().await {
            Some(HubMessage::Completion(c)) if c.invocation_id == id => break,
            Some(HubMessage::Close(close)) => panic!("closed: {close:?}"),
            Some(_) => {}
            None => panic!("the connection ended"),
        }
    }
    let grown = server.peak_rss_kib().saturating_sub(before);
    println!("{count} hub messages in one 16 MB WebSocket message: server peak grew {grown} KiB");
    // Far less than the message: it is read in pieces, never whole.
    assert!(grown < 4 * 1024, "the server's peak grew {grown} KiB");
}

/// Receivers of a hub-context broadcast loop: how many each got, in order, and the
/// longest it went without one.
struct Receiver {
    got: Arc<AtomicU64>,
    longest_gap_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

pub(crate) fn receive(mut reader: FrameReader, count: u64) -> Receiver {
    let got = Arc::new(AtomicU64::new(0));
    let longest_gap_ms = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn({
        let got = got.clone();
        let longest_gap_ms = longest_gap_ms.clone();
        async move {
            let mut last: Option<Instant> = None;
            let mut next = 0u64;
            while next < count {
                let Some(payload) = reader.next_payload().await else {
                    return Err(format!("closed after {next}"));
                };
                // {"type":1,"target":"AllMessage","arguments":["00000042:xxx…"]}
                let Some(number) = hubs_tests::numbered(&payload) else {
                    continue;
                };
                let number = Some(number);
                if number != Some(next) {
                    return Err(format!("expected {next}, got {number:?}"));
                }
                next += 1;
                got.store(next, Ordering::Relaxed);
                // Fair to the other readers of this process: a socket that always has
                // data would otherwise keep its task running for thousands of messages.
                if next.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
                let now = Instant::now();
                if let Some(last) = last {
                    let gap = now.duration_since(last).as_millis() as u64;
                    longest_gap_ms.fetch_max(gap, Ordering::Relaxed);
                }
                last = Some(now);
            }
            Ok(())
        }
    });
    Receiver {
        got,
        longest_gap_ms,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_context_loop_reaches_every_reading_receiver_and_cuts_only_the_stuck_one() {
    const RECEIVERS: usize = 200;
    const MESSAGES: u64 = 20_000;
    // The server in a process of its own: its memory is measured alone.
    let mut server = ServerProcess::start(None).await;
    let mut receivers = Vec::with_capacity(RECEIVERS);
    for _ in 0..RECEIVERS {
        receivers.push(receive(
            FrameReader::connect(server.addr, "/testhub").await,
            MESSAGES,
        ));
    }
    // One client that never reads again after its handshake.
    let stuck = RawClient::connect(server.addr, "/testhub", Protocol::Json).await;
    let baseline = server.rss_kib();
    let started = Instant::now();
    let report = server
        .command(
            &format!("broadcast {MESSAGES} 1024"),
            "broadcast:",
            Duration::from_secs(180),
        )
        .await;
    println!("{report}");
    let mut longest_gap = 0;
    for (i, receiver) in receivers.into_iter().enumerate() {
        let result = tokio::time::timeout(Duration::from_secs(60), receiver.task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "receiver {i} got {} of {MESSAGES}",
                    receiver.got.load(Ordering::Relaxed)
                )
            })
            .expect("the receiver task");
        assert_eq!(result, Ok(()), "receiver {i}");
        longest_gap = longest_gap.max(receiver.longest_gap_ms.load(Ordering::Relaxed));
    }
    let delivered_in = started.elapsed();
    let grown_mib = server.peak_rss_kib().saturating_sub(baseline) / 1024;
    println!(
        "{MESSAGES} × 1 KiB to {RECEIVERS} readers: {report}, all delivered in \
         {delivered_in:?}, the longest gap at a receiver {longest_gap} ms, server peak RSS \
         +{grown_mib} MiB"
    );
    let field = |name: &str| -> i64 {
        report
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert_eq!(field("disconnected="), 1, "only the stuck client is cut");
    // Nobody waited long for the stuck client: not the loop, not a reader.
    assert!(field("longest_send_ms=") < 1000, "a send waited too long");
    assert!(
        longest_gap < 1000,
        "a reader waited {longest_gap} ms between two messages"
    );
    // Cut within grace (5 s) + send_timeout (10 s) of the burst's start.
    let cut_ms = field("cut_ms=");
    assert!((0..15_000).contains(&cut_ms), "cut after {cut_ms} ms");
    // Paced at 256 KiB per reader and the stuck one under its 16 MiB hard cap, the
    // server's peak stays within 200 × 256 KiB + 16 MiB and the runtime's slack.
    assert!(
        grown_mib < 128,
        "the server's peak RSS grew {grown_mib} MiB"
    );
    drop(stuck);
}
