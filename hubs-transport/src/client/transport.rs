//! The client's side of negotiate and of the three transports. Each transport is turned
//! into two queues: frames to send, and bytes received.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hubs_core::TransportKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::StartError;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

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
    /// Cancel to close the transport.
    pub(crate) stop: CancellationToken,
}

/// What negotiate told us.
#[derive(Debug, Default)]
pub(crate) struct Negotiated {
    /// The base URL after redirects (no `/negotiate`).
    pub(crate) url: String,
    pub(crate) connection_id: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) transports: Vec<(TransportKind, Vec<String>)>,
    /// A bearer token a redirect handed out.
    pub(crate) access_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateWire {
    #[serde(default)]
    negotiate_version: Option<u32>,
    connection_id: Option<String>,
    connection_token: Option<String>,
    #[serde(default)]
    available_transports: Vec<TransportWire>,
    url: Option<String>,
    access_token: Option<String>,
    error: Option<String>,
    #[serde(rename = "ProtocolVersion")]
    protocol_version: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransportWire {
    transport: String,
    #[serde(default)]
    transfer_formats: Vec<String>,
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

fn request(
    method: Method,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, StartError> {
    let uri: Uri = url.parse().map_err(|_| StartError::Url(url.to_owned()))?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|_| StartError::Url(url.to_owned()))?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    request.headers_mut().insert(
        "x-requested-with",
        HeaderValue::from_static("XMLHttpRequest"),
    );
    Ok(request)
}

async fn read_body(
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<(StatusCode, Bytes), StartError> {
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| StartError::Transport(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}

/// Negotiates, following redirects (at most 100, as the official clients).
pub(crate) async fn negotiate(
    http: &HttpClient,
    url: &str,
    headers: &HeaderMap,
) -> Result<Negotiated, StartError> {
    let mut url = url.to_owned();
    let mut headers = headers.clone();
    let mut access_token = None;
    for _ in 0..100 {
        let negotiate_url = with_path_and_query(&url, "/negotiate", &[("negotiateVersion", "1")]);
        let response = http
            .request(request(
                Method::POST,
                &negotiate_url,
                &headers,
                Bytes::new(),
            )?)
            .await
            .map_err(|e| StartError::Negotiate(e.to_string()))?;
        let (status, body) = read_body(response).await?;
        if status != StatusCode::OK {
            let reason = status.canonical_reason().unwrap_or("");
            return Err(StartError::Negotiate(format!(
                "{reason}: Status code '{}'",
                status.as_u16()
            )));
        }
        let wire: NegotiateWire = serde_json::from_slice(&body)
            .map_err(|e| StartError::Negotiate(format!("invalid response: {e}")))?;
        if wire.protocol_version.is_some() {
            return Err(StartError::Negotiate(
                hubs_core::wire::LEGACY_SERVER.to_owned(),
            ));
        }
        if let Some(error) = wire.error {
            return Err(StartError::Negotiate(error));
        }
        if let Some(next) = wire.url {
            if let Some(token) = wire.access_token {
                if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                    headers.insert(header::AUTHORIZATION, value);
                }
                access_token = Some(token);
            }
            url = next;
            continue;
        }
        let version = wire.negotiate_version.unwrap_or(0);
        let token = if version >= 1 {
            wire.connection_token
        } else {
            wire.connection_id.clone()
        };
        return Ok(Negotiated {
            url,
            connection_id: wire.connection_id,
            token,
            transports: wire
                .available_transports
                .into_iter()
                .filter_map(|t| {
                    let kind = match t.transport.as_str() {
                        "WebSockets" => TransportKind::WebSockets,
                        "ServerSentEvents" => TransportKind::ServerSentEvents,
                        "LongPolling" => TransportKind::LongPolling,
                        _ => return None,
                    };
                    Some((kind, t.transfer_formats))
                })
                .collect(),
            access_token,
        });
    }
    Err(StartError::Negotiate(
        "Negotiate redirection limit exceeded.".to_owned(),
    ))
}

/// Opens `transport` to `url` (with `id` in the query when negotiated).
pub(crate) async fn connect(
    http: &HttpClient,
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
        TransportKind::WebSockets => websocket(&url, headers).await,
        TransportKind::ServerSentEvents => server_sent_events(http, &url, headers).await,
        TransportKind::LongPolling => long_polling(http, &url, headers, binary).await,
    }
}

async fn websocket(url: &str, headers: &HeaderMap) -> Result<Link, StartError> {
    let ws_url = if let Some(rest) = url.strip_prefix("http") {
        format!("ws{rest}")
    } else {
        url.to_owned()
    };
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| StartError::Transport(e.to_string()))?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| StartError::Transport(format!("WebSocket failed to connect: {e}")))?;
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
    let stop = CancellationToken::new();
    let writer_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = out_rx.recv() => {
                    let Some(frame) = frame else { break };
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
        let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
    });
    let reader_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                () = reader_stop.cancelled() => break,
            };
            let bytes = match message {
                Some(Ok(Message::Text(text))) => Bytes::from(text),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
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
        stop,
    })
}

/// Sends queued frames by POST, one request at a time, batching what queued up.
fn spawn_poster(
    http: HttpClient,
    url: String,
    headers: HeaderMap,
    binary: bool,
    stop: CancellationToken,
) -> mpsc::Sender<Outgoing> {
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
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
            let mut headers = headers.clone();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(if binary {
                    "application/octet-stream"
                } else {
                    "text/plain;charset=UTF-8"
                }),
            );
            let Ok(request) = request(Method::POST, &url, &headers, body.freeze()) else {
                break;
            };
            match http.request(request).await {
                Ok(response) if response.status().is_success() => {
                    let _ = read_body(response).await;
                }
                _ => {
                    stop.cancel();
                    break;
                }
            }
        }
    });
    out_tx
}

async fn server_sent_events(
    http: &HttpClient,
    url: &str,
    headers: &HeaderMap,
) -> Result<Link, StartError> {
    let mut get_headers = headers.clone();
    get_headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    let response = http
        .request(request(Method::GET, url, &get_headers, Bytes::new())?)
        .await
        .map_err(|e| StartError::Transport(e.to_string()))?;
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
    let out = spawn_poster(
        http.clone(),
        url.to_owned(),
        headers.clone(),
        false,
        stop.clone(),
    );
    Ok(Link {
        transport: TransportKind::ServerSentEvents,
        out,
        incoming: in_rx,
        stop,
    })
}

async fn long_polling(
    http: &HttpClient,
    url: &str,
    headers: &HeaderMap,
    binary: bool,
) -> Result<Link, StartError> {
    let poll_url = |url: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
            .to_string();
        with_path_and_query(url, "", &[("_", &now)])
    };
    // The first poll activates the connection.
    let response = http
        .request(request(Method::GET, &poll_url(url), headers, Bytes::new())?)
        .await
        .map_err(|e| StartError::Transport(e.to_string()))?;
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
        let (http, url, headers, stop) =
            (http.clone(), url.to_owned(), headers.clone(), stop.clone());
        async move {
            loop {
                let Ok(request) = request(Method::GET, &poll_url(&url), &headers, Bytes::new())
                else {
                    break;
                };
                let response = tokio::select! {
                    response = http.request(request) => response,
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
        let (http, url, headers, stop) =
            (http.clone(), url.to_owned(), headers.clone(), stop.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            if let Ok(request) = request(Method::DELETE, &url, &headers, Bytes::new()) {
                let _ = tokio::time::timeout(Duration::from_secs(5), http.request(request)).await;
            }
        });
    }
    let out = spawn_poster(
        http.clone(),
        url.to_owned(),
        headers.clone(),
        binary,
        stop.clone(),
    );
    Ok(Link {
        transport: TransportKind::LongPolling,
        out,
        incoming: in_rx,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::with_path_and_query;

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
    }
}
