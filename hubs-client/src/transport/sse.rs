//! Server-Sent Events for what the server sends, POSTs for what the client sends.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hubs_protocol::TransportKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::http_client::{Net, request};
use super::link::Link;
use super::long_polling::spawn_poster;
use crate::error::StartError;

pub(super) async fn connect(net: &Net, url: &str, headers: &HeaderMap) -> Result<Link, StartError> {
    let mut get_headers = headers.clone();
    get_headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
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
    let stop = CancellationToken::new();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    let reader_stop = stop.clone();
    let mut body = response.into_body();
    tokio::spawn(async move {
        let mut pending = BytesMut::new();
        let mut data = BytesMut::new();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = reader_stop.cancelled() => break,
            };
            let Some(Ok(frame)) = frame else { break };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&chunk);
            // Events are lines; `data: x` lines accumulate until an empty line.
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line = pending.split_to(end + 1);
                let line = &line[..line.len() - 1];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    if !data.is_empty() {
                        let event = data.split().freeze();
                        if in_tx.send(event).await.is_err() {
                            reader_stop.cancel();
                            return;
                        }
                    }
                } else if let Some(value) = line.strip_prefix(b"data:") {
                    if !data.is_empty() {
                        data.extend_from_slice(b"\n");
                    }
                    data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                }
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
    );
    Ok(Link {
        transport: TransportKind::ServerSentEvents,
        out,
        incoming: in_rx,
        guard: stop.drop_guard(),
        flushed,
        closed_cleanly: std::sync::Arc::default(),
    })
}
