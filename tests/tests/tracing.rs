//! Spans and W3C trace context across the wire: a Rust client calls the interop hub inside
//! a span; the server's invocation continues that trace, its call back to the client
//! carries it on, and the client's handler continues it again. Spans are exported through
//! `tracing-opentelemetry` to an in-memory OpenTelemetry exporter. This file is its own
//! process: the subscriber and the propagator are global.

use std::time::Duration;

use hubs::connection::HubConnection;
use hubs::{HubOptions, Server};
use hubs_examples::interop::TestHub;
use hubs_tests::{STEP, serve};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|KeyValue { key: k, .. }| k.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attribute(span, key)
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_crosses_client_server_and_back() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("hubs-tests")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let service = Server::new()
        .hub_with("/testhub", TestHub, HubOptions::default())
        .build()
        .expect("builds");
    let addr = serve(service).await;
    let connection = HubConnection::builder(format!("http://{addr}/testhub")).build();
    let (received, mut messages) = mpsc::unbounded_channel();
    connection.on("Message", move |(text,): (String,)| {
        let received = received.clone();
        async move {
            let _ = received.send(text);
        }
    });
    connection.start().await.expect("starts");

    let root = tracing::info_span!("test.root");
    async {
        let () = connection
            .invoke("InvokeWithString", ("traced",))
            .await
            .expect("invokes");
    }
    .instrument(root)
    .await;
    let text = tokio::time::timeout(STEP, messages.recv())
        .await
        .expect("the callback in time")
        .expect("a message");
    assert_eq!(text, "traced");
    connection.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = provider.force_flush();

    let spans = exporter.get_finished_spans().expect("spans");
    let find = |name: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.name == name && s.span_kind == kind)
            .unwrap_or_else(|| {
                let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.span_kind)).collect();
                panic!("no {kind:?} span {name}: {names:?}")
            })
    };
    let root = find("test.root", SpanKind::Internal);
    let call = find("InvokeWithString", SpanKind::Client);
    let served = find("/testhub/InvokeWithString", SpanKind::Server);
    let callback = find("Message", SpanKind::Server);
    let trace = root.span_context.trace_id();
    for span in [call, served, callback] {
        assert_eq!(
            span.span_context.trace_id(),
            trace,
            "{} is in the trace",
            span.name
        );
    }
    assert_eq!(call.parent_span_id, root.span_context.span_id());
    assert_eq!(
        served.parent_span_id,
        call.span_context.span_id(),
        "the server continues the client's call"
    );
    assert_eq!(
        callback.parent_span_id,
        served.span_context.span_id(),
        "the client continues the server's call"
    );

    assert_eq!(text_of(served, "rpc.system"), "signalr");
    assert_eq!(text_of(served, "rpc.service"), "/testhub");
    assert_eq!(text_of(served, "rpc.method"), "InvokeWithString");
    assert_eq!(text_of(served, "signalr.outcome"), "ok");
    assert_eq!(text_of(call, "rpc.method"), "InvokeWithString");

    let connection_span = find("signalr.connection", SpanKind::Internal);
    assert_eq!(text_of(connection_span, "signalr.transport"), "WebSockets");
    assert_eq!(text_of(connection_span, "signalr.protocol"), "json");
    assert_eq!(text_of(connection_span, "rpc.service"), "/testhub");
}

fn text_of(span: &SpanData, key: &str) -> String {
    let value = text(span, key);
    assert!(
        !value.is_empty(),
        "{} has no {key}: {:?}",
        span.name,
        span.attributes
    );
    value
}
