//! Slow consumers: a client that stops reading never holds up a fan-out. The hub's policy
//! decides what happens to it (disconnected by default, or skipped), and the cost is
//! counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hubs::protocol::{HubMessage, Invocation, Protocol};
use hubs::{
    HubContext, HubOptions, Server,
    routing::{SlowConsumer, SlowConsumerPolicy},
};
use hubs_examples::interop::TestHub;
use hubs_tests::{RawClient, serve};

async fn server(options: HubOptions) -> (SocketAddr, HubContext<TestHub>) {
    let service = Server::new()
        .hub_with(
            "/testhub",
            TestHub,
            options.outbound_budget(hubs_tests::small_budget()),
        )
        .build()
        .expect("builds");
    let context = service.hub_context::<TestHub>().expect("the hub");
    (serve(service).await, context)
}

/// Broadcasts `rounds` 16 KiB messages from a sender while a listener reads and a stuck
/// client does not; returns the slowest broadcast as the listener saw it (from the
/// sender's invocation to the listener's receipt).
async fn broadcast_past_a_stuck_client(addr: SocketAddr, rounds: usize) -> Duration {
    let mut sender = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let mut listener = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let payload = "p".repeat(16 * 1024);
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let value = sender.value(&payload);
        let started = Instant::now();
        let id = sender.invoke("SendToAll", vec![value]).await;
        loop {
            match listener.next_message().await {
                Some(HubMessage::Invocation(Invocation { target, .. }))
                    if target == "AllMessage" =>
                {
                    break;
                }
                Some(_) => {}
                None => panic!("the listener was closed at round {round}"),
            }
        }
        slowest = slowest.max(started.elapsed());
        loop {
            match sender.next_message().await {
                Some(HubMessage::Completion(c)) if c.invocation_id == id => break,
                Some(_) => {}
                None => panic!("the sender was closed at round {round}"),
            }
        }
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_disconnects_the_slow_client_and_nobody_waits() {
    // A single-recipient wait of a minute: if a broadcast waited on the stuck client, the
    // test would take that long.
    let (addr, context) = server(HubOptions::default().slow_consumer(SlowConsumerPolicy {
        direct: SlowConsumer::Wait(Duration::from_secs(60)),
        ..SlowConsumerPolicy::default()
    }))
    .await;
    let mut stuck = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let slowest = broadcast_past_a_stuck_client(addr, 400).await;
    println!("slowest broadcast past a stuck client (default policy): {slowest:?}");
    assert!(
        slowest < Duration::from_secs(5),
        "a broadcast waited on the stuck client: {slowest:?}"
    );
    assert_eq!(context.slow_consumer_stats().disconnected, 1);
    assert_eq!(context.slow_consumer_stats().skipped, 0);
    // The stuck client, reading again, finds what was queued, then a Close with an error
    // that allows reconnecting, then the end.
    let mut close = None;
    while let Some(message) = stuck.next_message().await {
        if let HubMessage::Close(c) = message {
            close = Some(c);
        }
    }
    let close = close.expect("the slow client was told why");
    assert_eq!(
        close.error.as_deref(),
        Some("Connection closed with an error.")
    );
    assert!(close.allow_reconnect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_effort_hub_skips_messages_for_the_slow_client_and_keeps_it() {
    let (addr, context) = server(HubOptions::default().slow_consumer(SlowConsumerPolicy {
        fan_out: SlowConsumer::Skip,
        ..SlowConsumerPolicy::default()
    }))
    .await;
    let mut stuck = RawClient::connect(addr, "/testhub", Protocol::Json).await;
    let slowest = broadcast_past_a_stuck_client(addr, 400).await;
    println!("slowest broadcast past a stuck client (skip policy): {slowest:?}");
    let stats = context.slow_consumer_stats();
    assert_eq!(stats.disconnected, 0);
    assert!(stats.skipped > 0, "{stats:?}");
    // The stuck client reads again: it is still connected and still served.
    let mut received = 0;
    let id = {
        // Drain what was queued for it, then call.
        let value = stuck.value("still here");
        stuck.invoke("Echo", vec![value]).await
    };
    loop {
        match stuck.next_message().await {
            Some(HubMessage::Invocation(_)) => received += 1,
            Some(HubMessage::Completion(c)) if c.invocation_id == id => break,
            Some(_) => {}
            None => panic!("the skipped client was closed"),
        }
    }
    // Every broadcast was either queued for it or skipped, and counted.
    assert_eq!(received as u64 + stats.skipped, 400);
}
