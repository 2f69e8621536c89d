//! Faults a production server meets, bounded and on loopback: clients that come and go
//! (cleanly or by reset) must leave no connection, group or memory behind; a server out
//! of file descriptors keeps serving its connections and recovers.

use std::sync::Arc;
use std::time::Duration;

use hubs::protocol::{HubMessage, Protocol};
use hubs::{HubOptions, Server, routing::InMemoryLifetimeManager};
use hubs_examples::interop::TestHub;
use hubs_tests::child::ServerProcess;
use hubs_tests::{RawClient, STEP, rss_kib, serve};

/// Not a test of its own: the server that [`ServerProcess`] runs in a child process, so
/// that its memory and file descriptors are its own.
#[test]
#[ignore = "run by the fault tests as a child process"]
fn child_server() {
    hubs_tests::child::serve_testhub();
}

/// One wave: `clients` connect, join one of 20 groups, send to their group, and leave,
/// half with a clean close and half by reset.
async fn wave(addr: std::net::SocketAddr, clients: usize, round: usize) {
    let mut joined = Vec::with_capacity(clients);
    for i in 0..clients {
        let protocol = if i % 2 == 0 {
            Protocol::Json
        } else {
            Protocol::MessagePack
        };
        let mut client = RawClient::connect(addr, "/testhub", protocol).await;
        let group = client.value(format!("room-{}", (i + round) % 20));
        let id = client.invoke("JoinGroup", vec![group]).await;
        loop {
            match client.next_message().await {
                Some(HubMessage::Completion(c)) if c.invocation_id == id => break,
                Some(_) => {}
                None => panic!("closed while joining"),
            }
        }
        joined.push(client);
    }
    for (i, mut client) in joined.into_iter().enumerate() {
        let group = client.value(format!("room-{}", (i + round) % 20));
        let text = client.value("hi");
        client.invoke("SendToGroup", vec![group, text]).await;
        if i % 2 == 0 {
            client.close().await;
        } else {
            client.reset();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_clients_leave_no_connection_group_or_memory_behind() {
    let routing = Arc::new(InMemoryLifetimeManager::new());
    let service = Server::new()
        .hub_with(
            "/testhub",
            TestHub,
            HubOptions::default().lifetime_manager(routing.clone()),
        )
        .build()
        .expect("builds");
    let observer = service.clone();
    let addr = serve(service).await;

    let settle = || async {
        tokio::time::timeout(STEP, async {
            while routing.connection_count() > 0
                || routing.group_count() > 0
                || observer.active_connections() > 0
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "left behind: {} connections, {} groups, {} transports",
                routing.connection_count(),
                routing.group_count(),
                observer.active_connections()
            )
        });
    };
    // Warm up (allocator pools, runtime), then measure.
    wave(addr, 100, 0).await;
    settle().await;
    let baseline = rss_kib();
    let rounds = 10;
    for round in 1..=rounds {
        wave(addr, 100, round).await;
    }
    settle().await;
    let after = rss_kib();
    // (The memory of this process is mostly the test's own clients: the server's is
    // measured on its own in a_server_process_gives_memory_back_after_churn.)
    println!(
        "{} clients came and went; in-process RSS {baseline} KiB before, {after} KiB after",
        rounds * 100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_process_gives_memory_back_after_churn() {
    let server = ServerProcess::start(None).await;
    wave(server.addr, 100, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.rss_kib();
    let mut peak = baseline;
    for round in 1..=20 {
        wave(server.addr, 100, round).await;
        peak = peak.max(server.rss_kib());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    println!(
        "server process: 2000 clients came and went: RSS {baseline} KiB before, peak {peak} KiB, {after} KiB after ({:+} KiB)",
        after as i64 - baseline as i64
    );
    assert!(
        after < baseline + 4 * 1024,
        "the server kept its memory: {baseline} KiB -> {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_keeps_serving_and_recovers() {
    let server = ServerProcess::start(Some(64)).await;
    let mut keeper = RawClient::connect(server.addr, "/testhub", Protocol::Json).await;
    // Far more connections than the server has descriptors for: accept fails (EMFILE)
    // once they run out; the kernel still completes the TCP handshakes.
    let mut flood = Vec::new();
    for _ in 0..150 {
        match tokio::net::TcpStream::connect(server.addr).await {
            Ok(stream) => flood.push(stream),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The connection it already had is served all along.
    for n in 0..5 {
        let value = keeper.value(format!("still served {n}"));
        let id = keeper.invoke("Echo", vec![value]).await;
        match keeper.next_message().await {
            Some(HubMessage::Completion(c)) => assert_eq!(c.invocation_id, id),
            other => panic!("the existing connection was not served: {other:?}"),
        }
    }
    // The flood goes: new clients are served again.
    drop(flood);
    let mut fresh = tokio::time::timeout(
        STEP,
        RawClient::connect(server.addr, "/testhub", Protocol::MessagePack),
    )
    .await
    .expect("a new client is accepted after the flood");
    let value = fresh.value("recovered");
    fresh.invoke("Echo", vec![value]).await;
    assert!(matches!(
        fresh.next_message().await,
        Some(HubMessage::Completion(_))
    ));
}
