//! Metrics through a real Prometheus recorder: after a known sequence (3 connect, 10
//! echo, 3 disconnect), `GET /metrics` of the interop server says exactly that; a
//! best-effort hub's skipped messages are counted. This file is its own process: the
//! recorder is global (each test uses a hub of its own).

use std::collections::HashMap;
use std::time::Duration;

use hubs::protocol::{HubMessage, Protocol};
use hubs_tests::{RawClient, STEP, http};
use tokio::net::TcpListener;

/// The process's one Prometheus recorder, installed by whichever test comes first.
fn recorder() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| hubs_examples::metrics::install().expect("the only recorder"))
        .clone()
}

/// `name{labels} value` lines of the text format, by `name{labels}`.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_messages_and_invocations() {
    let handle = recorder();
    let settings = hubs_examples::interop::Settings {
        metrics: Some(handle),
        ..Default::default()
    };
    let app = hubs_examples::interop::app(&settings).expect("builds");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(hubs::serve(listener, app, hubs::ServeOptions::default()));

    let mut clients = vec![
        RawClient::connect(addr, "/testhub", Protocol::Json).await,
        RawClient::connect(addr, "/testhub", Protocol::Json).await,
        RawClient::connect(addr, "/testhub", Protocol::MessagePack).await,
    ];
    for n in 0..10 {
        let client = &mut clients[n % 3];
        let value = client.value(format!("echo {n}"));
        let id = client.invoke("Echo", vec![value]).await;
        match client.next_message().await {
            Some(HubMessage::Completion(c)) => assert_eq!(c.invocation_id, id),
            other => panic!("no completion: {other:?}"),
        }
    }
    let (status, head, body) = http(addr, "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4")
    );
    let during = samples(&body);
    assert_eq!(
        during["signalr_server_active_connections{hub=\"/testhub\"}"],
        3.0
    );

    for client in clients {
        client.close().await;
    }
    let after = tokio::time::timeout(STEP, async {
        loop {
            let body = http(addr, "GET", "/metrics", &[]).await.2;
            let after = samples(&body);
            if after["signalr_server_active_connections{hub=\"/testhub\"}"] == 0.0 {
                return (body, after);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the connections ended");
    let (body, after) = after;
    let get = |key: &str| {
        after
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in\n{body}"))
    };
    // 7 Echoes on the JSON connections, 3 on the MessagePack one; every invocation is one
    // message in and one Completion out (no Pings, no handshakes counted).
    assert_eq!(
        get("signalr_server_messages_received_total{hub=\"/testhub\",protocol=\"json\"}"),
        7.0
    );
    assert_eq!(
        get("signalr_server_messages_received_total{hub=\"/testhub\",protocol=\"messagepack\"}"),
        3.0
    );
    assert_eq!(
        get("signalr_server_messages_sent_total{hub=\"/testhub\",protocol=\"json\"}"),
        7.0
    );
    assert_eq!(
        get("signalr_server_messages_sent_total{hub=\"/testhub\",protocol=\"messagepack\"}"),
        3.0
    );
    assert_eq!(
        get(
            "signalr_server_invocation_duration_seconds_count{hub=\"/testhub\",method=\"Echo\",outcome=\"ok\"}"
        ),
        10.0
    );
    assert_eq!(
        get(
            "signalr_server_connection_duration_seconds_count{hub=\"/testhub\",reason=\"transport_closed\"}"
        ),
        3.0
    );
    assert!(get("signalr_server_bytes_received_total{hub=\"/testhub\",protocol=\"json\"}") > 0.0);
    assert!(body.contains("# TYPE signalr_server_invocation_duration_seconds histogram"));
}

/// A best-effort hub (`Skip`) drops messages for a client that stays behind: the drops are
/// counted in the meters, and `/metrics` says how many, as `slow_consumer_stats` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_messages_are_counted_in_the_meters() {
    use hubs::{
        HubOptions, Server,
        routing::{OutboundBudget, SlowConsumer, SlowConsumerPolicy},
    };
    let handle = recorder();
    let options = HubOptions::default()
        .slow_consumer(SlowConsumerPolicy {
            fan_out: SlowConsumer::Skip,
            ..SlowConsumerPolicy::default()
        })
        .outbound_budget(
            OutboundBudget::default()
                .pace(16 * 1024)
                .soft_budget(32 * 1024)
                .grace(Duration::from_millis(100))
                .hard_cap(256 * 1024),
        );
    let service = Server::new()
        .hub_with("/besteffort", hubs_examples::interop::TestHub, options)
        .build()
        .expect("builds");
    let context = service
        .hub_context::<hubs_examples::interop::TestHub>()
        .expect("the hub");
    let addr = hubs_tests::serve(service).await;
    // Connected, then never reads: the kernel's buffers fill, then its queue.
    let _stuck = RawClient::connect(addr, "/besteffort", Protocol::Json).await;
    let payload = "p".repeat(16 * 1024);
    tokio::time::timeout(Duration::from_secs(30), async {
        while context.slow_consumer_stats().skipped < 10 {
            let _ = context
                .clients()
                .all()
                .send("AllMessage", (&payload,))
                .await;
        }
    })
    .await
    .expect("the stuck client is skipped");
    let stats = context.slow_consumer_stats();
    assert_eq!(stats.disconnected, 0);
    let body = handle.render();
    let counted = samples(&body)
        .get("signalr_server_slow_consumer_total{hub=\"/besteffort\",action=\"skipped\"}")
        .copied()
        .unwrap_or_else(|| panic!("no skipped count in\n{body}"));
    assert_eq!(counted, stats.skipped as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_negotiations_are_counted() {
    let handle = recorder();
    let service = hubs::Server::new()
        .max_pending_negotiations(5)
        .hub("/evicting", hubs_examples::interop::TestHub)
        .build()
        .expect("builds");
    let addr = hubs_tests::serve(service).await;
    for _ in 0..8 {
        let (status, _, _) =
            http(addr, "POST", "/evicting/negotiate?negotiateVersion=1", &[]).await;
        assert_eq!(status, 200);
    }
    let counted = samples(&handle.render())
        .get(hubs::meters::names::NEGOTIATIONS_EVICTED)
        .copied();
    assert_eq!(counted, Some(3.0), "8 negotiates, 5 places");
}
