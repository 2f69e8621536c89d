//! The three transports, each turned into two queues: frames to send, and bytes received.
//! Negotiate ([`crate::negotiate`]) and the handshake ([`crate::handshake`]) run over them.

mod http_client;
pub(crate) mod in_memory;
mod long_polling;
mod sse;
mod websocket;

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use hubs_protocol::TransportKind;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

pub(crate) use self::http_client::{Net, read_body, request};
use crate::StartError;

/// Bytes to send, and whether they go in a text frame (WebSockets only).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) bytes: Bytes,
    pub(crate) text: bool,
}

/// An open transport.
pub(crate) struct Link {
    pub(crate) transport: TransportKind,
    pub(crate) out: mpsc::Sender<Outgoing>,
    pub(crate) incoming: mpsc::Receiver<Bytes>,
    /// Fires once the writer has written everything queued before `out` was dropped.
    pub(crate) flushed: oneshot::Receiver<()>,
    /// Closes the transport when the link is dropped.
    pub(crate) guard: DropGuard,
    /// Set when the server closed the transport cleanly (a WebSocket close frame): not a
    /// drop to resume from.
    pub(crate) closed_cleanly: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    /// Closes the transport gracefully: what is queued is written first (for at most
    /// `patience`), then the transport closes.
    pub(crate) async fn finish(self, patience: Duration) {
        let Self {
            out,
            flushed,
            guard,
            ..
        } = self;
        drop(out);
        let _ = tokio::time::timeout(patience, flushed).await;
        drop(guard);
    }
}

/// `base` + `suffix` on the path, keeping the query and adding `extra` to it.
pub(crate) fn with_path_and_query(base: &str, suffix: &str, extra: &[(&str, &str)]) -> String {
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let mut url = format!("{}{suffix}", path.trim_end_matches('/'));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    for (key, value) in extra {
        if !params.iter().any(|p| p.split('=').next() == Some(key)) {
            params.push(format!("{key}={value}"));
        }
    }
    if !params.is_empty() {
        url.push('?');
        url.push_str(&params.join("&"));
    }
    url
}

/// The URL with an `http(s)` scheme (a `ws(s)` one is mapped).
pub(crate) fn http_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        url.to_owned()
    }
}

/// Opens `transport` to `url` (with the connection `token` in the query when negotiated).
pub(crate) async fn connect(
    net: &Net,
    transport: TransportKind,
    url: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    binary: bool,
) -> Result<Link, StartError> {
    let url = match token {
        Some(token) => with_path_and_query(url, "", &[("id", token)]),
        None => url.to_owned(),
    };
    match transport {
        TransportKind::WebSockets => websocket::connect(net, &url, headers).await,
        TransportKind::ServerSentEvents => sse::connect(net, &url, headers).await,
        TransportKind::LongPolling => long_polling::connect(net, &url, headers, binary).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_query() {
        assert_eq!(
            with_path_and_query(
                "http://h/chat?room=7",
                "/negotiate",
                &[("negotiateVersion", "1")]
            ),
            "http://h/chat/negotiate?room=7&negotiateVersion=1"
        );
        assert_eq!(
            with_path_and_query("http://h/chat/", "/negotiate", &[("negotiateVersion", "1")]),
            "http://h/chat/negotiate?negotiateVersion=1"
        );
        assert_eq!(
            with_path_and_query("http://h/chat", "", &[("id", "x")]),
            "http://h/chat?id=x"
        );
        assert_eq!(http_url("wss://h/chat"), "https://h/chat");
        assert_eq!(http_url("ws://h/chat"), "http://h/chat");
        assert_eq!(http_url("https://h/chat"), "https://h/chat");
    }
}
