//! Long polling for what the server sends, POSTs for what the client sends.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hubs_protocol::TransportKind;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::http_client::{Net, read_body, request};
use super::link::{Link, Outgoing};
use super::url::with_path_and_query;
use crate::error::StartError;

/// Sends queued frames by POST, one request at a time, batching what queued up. The
/// receiver fires once everything queued before the sender was dropped is sent.
pub(super) fn spawn_poster(
    net: Net,
    url: String,
    headers: HeaderMap,
    binary: bool,
    stop: CancellationToken,
) -> (mpsc::Sender<Outgoing>, oneshot::Receiver<()>) {
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let (flushed_tx, flushed) = oneshot::channel();
    let mut headers = headers;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if binary {
            "application/octet-stream"
        } else {
            "text/plain;charset=UTF-8"
        }),
    );
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                frame = out_rx.recv() => frame,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut body = BytesMut::from(&first.bytes[..]);
            while let Ok(more) = out_rx.try_recv() {
                body.extend_from_slice(&more.bytes);
            }
            let Ok(request) = request(Method::POST, &url, &headers, body.freeze()) else {
                break;
            };
            match net.send(request).await {
                Ok(response) if response.status().is_success() => {
                    let _ = read_body(response).await;
                }
                _ => {
                    stop.cancel();
                    break;
                }
            }
        }
        let _ = flushed_tx.send(());
    });
    (out_tx, flushed)
}

fn poll_url(url: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string();
    with_path_and_query(url, "", &[("_", &now)])
}

pub(super) async fn connect(
    net: &Net,
    url: &str,
    headers: &HeaderMap,
    binary: bool,
) -> Result<Link, StartError> {
    // The first poll activates the connection.
    let response = net
        .send(request(Method::GET, &poll_url(url), headers, Bytes::new())?)
        .await
        .map_err(StartError::Transport)?;
    let (status, _) = read_body(response).await?;
    if status != StatusCode::OK {
        return Err(StartError::Transport(format!(
            "Unexpected response code: {}.",
            status.as_u16()
        )));
    }
    let stop = CancellationToken::new();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    let poller = {
        let (net, url, headers, stop) =
            (net.clone(), url.to_owned(), headers.clone(), stop.clone());
        async move {
            loop {
                let Ok(request) = request(Method::GET, &poll_url(&url), &headers, Bytes::new())
                else {
                    break;
                };
                let response = tokio::select! {
                    response = net.send(request) => response,
                    () = stop.cancelled() => break,
                };
                let Ok(response) = response else { break };
                let Ok((status, body)) = read_body(response).await else {
                    break;
                };
                match status {
                    StatusCode::OK if body.is_empty() => {}
                    StatusCode::OK => {
                        if in_tx.send(body).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            stop.cancel();
        }
    };
    tokio::spawn(poller);
    // DELETE when stopped.
    {
        let (net, url, headers, stop) =
            (net.clone(), url.to_owned(), headers.clone(), stop.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            if let Ok(request) = request(Method::DELETE, &url, &headers, Bytes::new()) {
                let _ = tokio::time::timeout(Duration::from_secs(5), net.send(request)).await;
            }
        });
    }
    let (out, flushed) = spawn_poster(
        net.clone(),
        url.to_owned(),
        headers.clone(),
        binary,
        stop.clone(),
    );
    Ok(Link {
        transport: TransportKind::LongPolling,
        out,
        incoming: in_rx,
        guard: stop.drop_guard(),
        flushed,
        closed_cleanly: std::sync::Arc::default(),
    })
}
