//! Long polling for what the server sends, POSTs for what the client sends.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hubs_protocol::TransportKind;
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
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
                    let _ = read_body(response, IGNORED_BODY).await;
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

/// How much of a body the client reads and ignores (a POST's answer, the first poll's).
const IGNORED_BODY: usize = 64 * 1024;

/// The first pause after a poll that brought nothing back at once.
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between polls.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Spaces out useless polls: a server that answers polls at once with nothing (or that is
/// not a SignalR server) would otherwise be polled thousands of times a second. Each empty
/// answer that comes back sooner than the pause doubles it, from 50 ms up to 1 s; a poll
/// that brings data, or that the server held at least that long (a long poll that timed
/// out), resets it.
#[derive(Debug, Default)]
struct Pacing {
    pause: Duration,
}

impl Pacing {
    /// The pause before the next poll, after one that `brought` data (or not) and that
    /// the server `held` for so long.
    fn after(&mut self, brought: bool, held: Duration) -> Duration {
        let next = self.pause.saturating_mul(2).clamp(FIRST_PAUSE, MAX_PAUSE);
        self.pause = if brought || held >= next {
            Duration::ZERO
        } else {
            next
        };
        self.pause
    }
}

fn poll_url(url: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string();
    with_path_and_query(url, "", &[("_", &now)])
}

/// Hands a poll's body on as it arrives (nothing here grows with it); whether it carried
/// any bytes. `None` when the body failed or nobody reads any more.
async fn forward(mut body: Incoming, to: &mpsc::Sender<Bytes>) -> Option<bool> {
    let mut brought = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        if !data.is_empty() {
            brought = true;
            to.send(data).await.ok()?;
        }
    }
    Some(brought)
}

/// Polls until the server ends the connection (any answer but 200: 204 when it closed
/// it), a poll fails, or `stop`; then stops the link.
async fn poll(
    net: Net,
    url: String,
    headers: HeaderMap,
    to: mpsc::Sender<Bytes>,
    stop: CancellationToken,
) {
    let mut pacing = Pacing::default();
    loop {
        let Ok(request) = request(Method::GET, &poll_url(&url), &headers, Bytes::new()) else {
            break;
        };
        let asked = Instant::now();
        let answered = tokio::select! {
            answered = async {
                let response = net.send(request).await.ok()?;
                if response.status() != StatusCode::OK {
                    return None;
                }
                forward(response.into_body(), &to).await
            } => answered,
            () = stop.cancelled() => None,
        };
        let Some(brought) = answered else { break };
        let pause = pacing.after(brought, asked.elapsed());
        if !pause.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => break,
            }
        }
    }
    stop.cancel();
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
    let (status, _) = read_body(response, IGNORED_BODY)
        .await
        .map_err(StartError::Transport)?;
    if status != StatusCode::OK {
        return Err(StartError::Transport(format!(
            "Unexpected response code: {}.",
            status.as_u16()
        )));
    }
    let stop = CancellationToken::new();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(poll(
        net.clone(),
        url.to_owned(),
        headers.clone(),
        in_tx,
        stop.clone(),
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_answers_at_once_are_spaced_out_more_and_more() {
        let mut pacing = Pacing::default();
        let at_once = Duration::from_millis(1);
        let pauses: Vec<u128> = (0..7)
            .map(|_| pacing.after(false, at_once).as_millis())
            .collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn data_or_a_held_poll_resets_the_pause() {
        let mut pacing = Pacing::default();
        let at_once = Duration::from_millis(1);
        pacing.after(false, at_once);
        pacing.after(false, at_once);
        assert_eq!(pacing.after(true, at_once), Duration::ZERO);
        assert_eq!(pacing.after(false, at_once), FIRST_PAUSE);
        assert_eq!(pacing.after(false, at_once), 2 * FIRST_PAUSE);
        // Held as long as the next pause would be: a long poll, answered in its time.
        assert_eq!(pacing.after(false, 4 * FIRST_PAUSE), Duration::ZERO);
        assert_eq!(pacing.after(false, at_once), FIRST_PAUSE);
        // A server that holds polls a while but not long enough still gets paced.
        assert_eq!(pacing.after(false, FIRST_PAUSE), 2 * FIRST_PAUSE);
    }
}
