//! The three transports, each turned into two queues: frames to send, and bytes received.
//! Negotiate ([`crate::negotiate`]) and the handshake ([`crate::handshake`]) run over them.

pub(crate) mod auth;
pub(crate) mod event_stream;
mod http_client;
pub(crate) mod in_memory;
mod link;
mod long_polling;
mod sse;
mod url;
mod websocket;

use http::HeaderMap;
use hubs_protocol::TransportKind;

use self::auth::Auth;
pub(crate) use self::http_client::{Net, read_body, request};
pub(crate) use self::link::{Link, Outgoing};
pub(crate) use self::url::{http_url, refresh_url, with_path_and_query};
use crate::error::StartError;

/// Opens `transport` to `url` (with the connection `token` in the query when negotiated);
/// the HTTP requests that follow (polls, sends, the DELETE) carry `auth`'s token.
pub(crate) async fn connect(
    net: &Net,
    transport: TransportKind,
    url: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    binary: bool,
    auth: &Auth,
) -> Result<Link, StartError> {
    let url = match token {
        Some(token) => with_path_and_query(url, "", &[("id", token)]),
        None => url.to_owned(),
    };
    match transport {
        TransportKind::WebSockets => websocket::connect(net, &url, headers).await,
        TransportKind::ServerSentEvents => sse::connect(net, &url, headers, auth).await,
        TransportKind::LongPolling => long_polling::connect(net, &url, headers, binary, auth).await,
    }
}
