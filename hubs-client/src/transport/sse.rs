//! Server-Sent Events for what the server sends, POSTs for what the client sends.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hubs_protocol::TransportKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::event_stream::EventStream;
use super::http_client::{Net, request};
use super::link::Link;
use super::long_polling::spawn_poster;
use crate::error::StartError;
use crate::transport::auth::Auth;

/// What an event stream is served as.
const EVENT_STREAM: &str = "text/event-stream";

/// Whether the response is an event stream (its media type, parameters aside), or why not.
fn check_content_type(headers: &HeaderMap) -> Result<(), StartError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(StartError::Transport(format!(
            "EventSource's response has no content type; expected '{EVENT_STREAM}'"
        )));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let media_type = text.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(EVENT_STREAM) {
        return Ok(());
    }
    Err(StartError::Transport(format!(
        "EventSource's response has content type '{text}', not '{EVENT_STREAM}'"
    )))
}

pub(super) async fn connect(
    net: &Net,
    url: &str,
    headers: &HeaderMap,
    auth: &Auth,
) -> Result<Link, StartError> {
    let mut get_headers = headers.clone();
    get_headers.insert(header::ACCEPT, HeaderValue::from_static(EVENT_STREAM));
    let response = net
        .send(request(Method::GET, url, &get_headers, Bytes::new())?)
        .await
        .map_err(StartError::Transport)?;
    if response.status() != StatusCode::OK {
        return Err(StartError::Transport(format!(
            "EventSource failed to connect: status {}",
            response.status()
        )));
    }
    check_content_type(response.headers())?;
    let stop = CancellationToken::new();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    let reader_stop = stop.clone();
    let mut body = response.into_body();
    tokio::spawn(async move {
        let mut events = EventStream::default();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = reader_stop.cancelled() => break,
            };
            let Some(Ok(frame)) = frame else { break };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let data = events.push(&chunk);
            if !data.is_empty() && in_tx.send(data.into()).await.is_err() {
                break;
            }
        }
        reader_stop.cancel();
    });
    let (out, flushed) = spawn_poster(
        net.clone(),
        url.to_owned(),
        headers.clone(),
        false,
        stop.clone(),
        auth.clone(),
    );
    Ok(Link {
        transport: TransportKind::ServerSentEvents,
        out,
        incoming: in_rx,
        guard: stop.drop_guard(),
        flushed,
        closed_cleanly: std::sync::Arc::default(),
        failure: std::sync::Arc::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_content_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn only_an_event_stream_is_read() {
        assert!(check_content_type(&with_content_type("text/event-stream")).is_ok());
        assert!(check_content_type(&with_content_type("Text/Event-Stream; charset=utf-8")).is_ok());
        for refused in [
            with_content_type("text/plain"),
            with_content_type("text/event-streaming"),
            HeaderMap::new(),
        ] {
            let error = check_content_type(&refused).map_err(|e| e.to_string());
            assert!(
                error
                    .as_ref()
                    .is_err_and(|e| e.contains("text/event-stream")),
                "{error:?}"
            );
        }
    }
}
