//! W3C trace context in hub message headers (`traceparent`, `tracestate`), so a trace
//! crosses browser → server → other clients → server.
//!
//! With the `opentelemetry` feature, spans continue the trace a message carries, and
//! messages sent carry the current span's context, through the process's global
//! OpenTelemetry propagator (install `TraceContextPropagator`) and `tracing-opentelemetry`.
//! Without it, these functions do nothing.

use crate::message::Headers;

/// Makes `span` a continuation of the trace `headers` carry, if any.
#[cfg(feature = "opentelemetry")]
pub fn continue_trace(span: &tracing::Span, headers: &Headers) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
}

/// Makes `span` a continuation of the trace `headers` carry, if any.
#[cfg(not(feature = "opentelemetry"))]
pub fn continue_trace(span: &tracing::Span, headers: &Headers) {
    let _ = (span, headers);
}

/// The headers that carry the current span's trace (empty when there is none).
#[cfg(feature = "opentelemetry")]
pub fn current() -> Headers {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    if span.is_disabled() {
        return Headers::new();
    }
    let context = span.context();
    let mut headers = Headers::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
}

/// The headers that carry the current span's trace (empty when there is none).
#[cfg(not(feature = "opentelemetry"))]
pub fn current() -> Headers {
    Headers::new()
}

#[cfg(feature = "opentelemetry")]
struct HeaderExtractor<'a>(&'a Headers);

#[cfg(feature = "opentelemetry")]
impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(feature = "opentelemetry")]
struct HeaderInjector<'a>(&'a mut Headers);

#[cfg(feature = "opentelemetry")]
impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
