//! Micro-benchmarks of the hot paths: decode + dispatch of one invocation through a
//! connection, encoding one broadcast, and routing to a group among 10 000.
//!
//! `cargo bench -p hubs-signalr --bench hot_paths`

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hubs::protocol::{HandshakeRequest, Protocol};
use hubs::runtime::{Capabilities, ConnectionHandle, HubEndpoint, HubRuntime, TransportConnection};
use hubs::{
    ConnectionId, HubOptions, TransportKind, hub,
    routing::{InMemoryLifetimeManager, LifetimeManager, Selection, SerializedMessage},
    runtime::Services,
};
use tokio::sync::mpsc;

struct Bench;

#[hub]
impl Bench {
    pub(crate) fn echo(&self, text: String) -> String {
        text
    }
}

fn dispatch(c: &mut Criterion) {
    echo_through_a_connection(c, "dispatch/echo_through_a_connection_json");
}

/// The same with a Prometheus recorder installed (the cost of hubs' metrics).
fn dispatch_with_metrics(c: &mut Criterion) {
    let _ = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
    echo_through_a_connection(c, "dispatch/echo_through_a_connection_json_with_metrics");
}

fn echo_through_a_connection(c: &mut Criterion, name: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hub =
        HubRuntime::new(Bench, HubOptions::default(), Arc::new(Services::new())).expect("hub");
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let incoming =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
        );
    let mut connected = (hub as Arc<dyn HubEndpoint>).connect(TransportConnection {
        connection_id: ConnectionId::generate(),
        request: hubs::Request::default(),
        transport: TransportKind::WebSockets,
        capabilities: Capabilities::new(true, true),
        incoming: Box::pin(incoming),
    });
    let task = runtime.spawn(connected.task);
    let mut handshake = Vec::new();
    HandshakeRequest::new("json", 1).encode(&mut handshake);
    tx.send(handshake.into()).expect("send");
    runtime.block_on(async { connected.outgoing.recv().await.expect("handshake response") });

    let frame = Bytes::from_static(
        b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"hello\"]}\x1e",
    );
    c.bench_function(name, |b| {
        b.iter(|| {
            tx.send(frame.clone()).expect("send");
            let completion = runtime.block_on(async {
                loop {
                    let frame = connected.outgoing.recv().await.expect("completion");
                    if frame.bytes.starts_with(b"{\"type\":3") {
                        break frame;
                    }
                }
            });
            black_box(completion)
        })
    });
    task.abort();
}

fn broadcast_encoding(c: &mut Criterion) {
    let text = "a message of moderate length for everyone in the room";
    c.bench_function("broadcast/encode_once_per_protocol", |b| {
        b.iter(|| {
            let arguments = ("ann", text);
            let message =
                SerializedMessage::invocation("ReceiveMessage", &arguments, Default::default());
            black_box(message.bytes(Protocol::Json).expect("json"));
            black_box(message.bytes(Protocol::MessagePack).expect("msgpack"))
        })
    });
}

fn group_routing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let manager = InMemoryLifetimeManager::new();
    let mut queues = Vec::new();
    runtime.block_on(async {
        for i in 0..10_000 {
            let (handle, rx) = ConnectionHandle::standalone(
                ConnectionId::generate(),
                None,
                Protocol::Json,
                Default::default(),
            );
            let id = handle.id().clone();
            manager.on_connected(handle).await;
            manager
                .add_to_group(&id, &format!("group-{i}"))
                .await
                .expect("adds");
            queues.push(rx);
        }
    });
    let selection = Selection::Group("group-4242".to_owned());
    c.bench_function("routing/select_one_group_of_10000", |b| {
        b.iter(|| black_box(manager.select(black_box(&selection))))
    });
    let message = SerializedMessage::invocation("Ping", &(), Default::default());
    c.bench_function("routing/send_to_one_group_of_10000", |b| {
        b.iter(|| {
            runtime
                .block_on(manager.send(&selection, &message))
                .expect("sends");
            while queues[4242].try_recv().is_ok() {}
        })
    });
}

criterion_group!(
    benches,
    dispatch,
    broadcast_encoding,
    group_routing,
    dispatch_with_metrics
);
criterion_main!(benches);
