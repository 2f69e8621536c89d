//! One trace across the wire, exported to stdout through OpenTelemetry.
//!
//! ```text
//! cargo run -p hubs-examples --bin otel_trace
//! ```
//!
//! It serves the chat hub on a free port, connects a Rust client, and sends a chat message
//! inside a span. The server's `SendMessage` continues the client's trace (the
//! `traceparent` hub message header), its `ReceiveMessage` to every client carries it on,
//! and the client's handler continues it again. The spans are printed as they end; they
//! all share one trace id. The same set-up exports to any OpenTelemetry backend (swap the
//! stdout exporter for OTLP).

use std::time::Duration;

use hubs::connection::HubConnection;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // W3C trace context in and out of hub message headers.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel_trace")));
    tracing::subscriber::set_global_default(subscriber)?;

    let service = hubs_examples::chat::server(hubs::HubOptions::default()).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(service.serve(listener));

    // The chat name is the bearer token.
    let connection = HubConnection::builder(format!("http://{addr}/chat"))
        .access_token(|| async { Some("ann".to_owned()) })
        .build();
    let (done, mut received) = tokio::sync::mpsc::unbounded_channel();
    connection.on(
        "ReceiveMessage",
        move |(message,): (hubs_examples::chat::Message,)| {
            let done = done.clone();
            async move {
                let _ = done.send(format!("{}: {}", message.user, message.text));
            }
        },
    );
    connection.start().await?;
    connection
        .send("SendMessage", ("", "hello, traced"))
        .instrument(tracing::info_span!("chat.user_action"))
        .await?;
    if let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), received.recv()).await {
        eprintln!("received {line}");
    }
    connection.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    provider.force_flush()?;
    Ok(())
}
