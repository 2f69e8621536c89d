//! WebSockets, over TCP or TLS.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use hubs_protocol::TransportKind;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::http_client::Net;
use super::link::{Link, Outgoing};
use crate::error::StartError;

#[cfg(feature = "tls")]
type Stream = tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;
#[cfg(not(feature = "tls"))]
type Stream = TcpStream;

/// The URL with a `ws(s)` scheme (an `http(s)` one is mapped).
fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_owned()
    }
}

/// Opens a TCP connection to the URL's host, with TLS for `wss`.
async fn open(net: &Net, uri: &http::Uri) -> Result<Stream, String> {
    let secure = uri.scheme_str() == Some("wss");
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    if !secure {
        #[cfg(feature = "tls")]
        return Ok(tokio_util::either::Either::Left(tcp));
        #[cfg(not(feature = "tls"))]
        return Ok(tcp);
    }
    #[cfg(feature = "tls")]
    {
        let config = net.tls.clone()?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("invalid server name {host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(tokio_util::either::Either::Right(tls))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (net, tcp);
        Err("this client was built without the `tls` feature".to_owned())
    }
}

pub(super) async fn connect(net: &Net, url: &str, headers: &HeaderMap) -> Result<Link, StartError> {
    let ws_url = ws_url(url);
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| StartError::Transport(e.to_string()))?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    let failed = |e: String| StartError::Transport(format!("WebSocket failed to connect: {e}"));
    let stream = open(net, request.uri()).await.map_err(failed)?;
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    let (flushed_tx, flushed) = oneshot::channel();
    let stop = CancellationToken::new();
    let writer_stop = stop.clone();
    let closed_cleanly = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        // Closed by `Link::close` (the sender dropped): a clean close. Stopped (the link dropped,
        // the socket failed): no closing handshake, so a stateful server waits for a resume.
        let mut clean = false;
        loop {
            tokio::select! {
                frame = out_rx.recv() => {
                    let Some(frame) = frame else {
                        clean = true;
                        break;
                    };
                    let message = if frame.text {
                        match String::from_utf8(frame.bytes.to_vec()) {
                            Ok(text) => Message::Text(text.into()),
                            Err(_) => Message::Binary(frame.bytes),
                        }
                    } else {
                        Message::Binary(frame.bytes)
                    };
                    if sink.send(message).await.is_err() {
                        writer_stop.cancel();
                        break;
                    }
                }
                () = writer_stop.cancelled() => break,
            }
        }
        if clean {
            let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
        }
        let _ = flushed_tx.send(());
    });
    let reader_stop = stop.clone();
    let peer_closed = closed_cleanly.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                () = reader_stop.cancelled() => break,
            };
            let bytes = match message {
                Some(Ok(Message::Text(text))) => Bytes::from(text),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Close(_))) => {
                    peer_closed.store(true, std::sync::atomic::Ordering::Release);
                    break;
                }
                Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            };
            if in_tx.send(bytes).await.is_err() {
                break;
            }
        }
        reader_stop.cancel();
    });
    Ok(Link {
        transport: TransportKind::WebSockets,
        out: out_tx,
        incoming: in_rx,
        guard: stop.drop_guard(),
        flushed,
        closed_cleanly,
        failure: std::sync::Arc::default(),
    })
}
