//! Long polling for what the server sends, POSTs for what the client sends.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hubs_protocol::TransportKind;
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Auth};
use super::http_client::{Net, read_body};
use super::link::{Link, Outgoing};
use super::url::with_path_and_query;
use crate::error::StartError;

/// Sends queued frames by POST, one request at a time, batching what queued up, with
/// `auth`'s token (sent again once, with a new token, after a 401). The receiver fires
/// once everything queued before the sender was dropped is sent.
pub(super) fn spawn_poster(
    net: Net,
    url: String,
    headers: HeaderMap,
    binary: bool,
    stop: CancellationToken,
    auth: Auth,
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
            match auth
                .send(&net, Method::POST, &url, &headers, body.freeze())
                .await
            {
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

/// What one poll came to.
enum Polled {
    /// 200: its body was handed on (whether it carried any bytes).
    Data(bool),
    /// 409 `authentication_refresh_required`.
    RefreshRequired,
    /// The connection is over (with why, when that is worth telling).
    End(Option<String>),
}

/// One poll, with `auth`'s token; `refreshed`: the poll before it was answered
/// `authentication_refresh_required` and the token refreshed.
async fn poll_once(
    net: &Net,
    url: &str,
    headers: &HeaderMap,
    auth: &Auth,
    to: &mpsc::Sender<Bytes>,
    refreshed: bool,
) -> Polled {
    let response = match auth
        .send(net, Method::GET, &poll_url(url), headers, Bytes::new())
        .await
    {
        Ok(response) => response,
        Err(_) => return Polled::End(None),
    };
    match response.status() {
        StatusCode::OK => match forward(response.into_body(), to).await {
            Some(brought) => Polled::Data(brought),
            None => Polled::End(None),
        },
        // Once: a second 409 in a row ends the connection, whatever its body (the
        // official client's "Conflict: Status code '409'").
        StatusCode::CONFLICT if refreshed => {
            Polled::End(Some("Conflict: Status code '409'".to_owned()))
        }
        StatusCode::CONFLICT => match read_body(response, IGNORED_BODY).await {
            Ok((_, body)) if auth::refresh_required(&body) => Polled::RefreshRequired,
            _ => Polled::End(None),
        },
        _ => Polled::End(None),
    }
}

/// Polls until the server ends the connection (any answer but 200: 204 when it closed
/// it), a poll fails, or `stop`; then stops the link. A 409
/// `authentication_refresh_required` refreshes the token and polls again at once (a
/// refresh that fails, or a second 409 in a row, ends the connection, saying why in
/// `failure`).
async fn poll(
    net: Net,
    url: String,
    headers: HeaderMap,
    auth: Auth,
    to: mpsc::Sender<Bytes>,
    stop: CancellationToken,
    failure: Arc<OnceLock<String>>,
) {
    let mut pacing = Pacing::default();
    let mut refreshed = false;
    loop {
        let asked = Instant::now();
        let polled = tokio::select! {
            polled = poll_once(&net, &url, &headers, &auth, &to, refreshed) => polled,
            () = stop.cancelled() => Polled::End(None),
        };
        let brought = match polled {
            Polled::Data(brought) => brought,
            Polled::RefreshRequired => {
                refreshed = true;
                let outcome = tokio::select! {
                    outcome = auth.refresh() => outcome,
                    () = stop.cancelled() => break,
                };
                if let Err(error) = outcome {
                    tracing::debug!(%error, "the authentication refresh a poll asked for failed");
                    let _ = failure.set(error.to_string());
                    break;
                }
                continue;
            }
            Polled::End(reason) => {
                if let Some(reason) = reason {
                    let _ = failure.set(reason);
                }
                break;
            }
        };
        refreshed = false;
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
    auth: &Auth,
) -> Result<Link, StartError> {
    // The first poll activates the connection.
    let response = auth
        .send(net, Method::GET, &poll_url(url), headers, Bytes::new())
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
    let failure = Arc::<OnceLock<String>>::default();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(poll(
        net.clone(),
        url.to_owned(),
        headers.clone(),
        auth.clone(),
        in_tx,
        stop.clone(),
        failure.clone(),
    ));
    // DELETE when stopped.
    {
        let (net, url, headers, stop, auth) = (
            net.clone(),
            url.to_owned(),
            headers.clone(),
            stop.clone(),
            auth.clone(),
        );
        tokio::spawn(async move {
            stop.cancelled().await;
            let delete = auth.send(&net, Method::DELETE, &url, &headers, Bytes::new());
            let _ = tokio::time::timeout(Duration::from_secs(5), delete).await;
        });
    }
    let (out, flushed) = spawn_poster(
        net.clone(),
        url.to_owned(),
        headers.clone(),
        binary,
        stop.clone(),
        auth.clone(),
    );
    Ok(Link {
        transport: TransportKind::LongPolling,
        out,
        incoming: in_rx,
        guard: stop.drop_guard(),
        flushed,
        closed_cleanly: Arc::default(),
        failure,
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
