//! Opening a connection: negotiate, a transport the server offers, and the handshake.
//! Resuming one (stateful reconnect): a new WebSocket to the same connection, no
//! negotiate and no handshake.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use hubs_protocol::TransportKind;
use hubs_protocol::{HandshakeRequest, HandshakeResponse, HubMessage, Protocol, TransferFormat};

use crate::config::Config;
use crate::credentials::{authorize, base_headers, fresh_token, headers};
use crate::error::{HandshakeError, StartError};
use crate::negotiate::negotiate;
use crate::transport::auth::Auth;
use crate::transport::{self, Link, Net, Outgoing};

/// A connection ready to run.
pub(crate) struct Opened {
    pub(crate) link: Link,
    /// What arrived after the handshake answer.
    pub(crate) leftover: Bytes,
    pub(crate) connection_id: Option<String>,
    /// Where a stateful connection resumes (the URL and the token), when it is one.
    pub(crate) resume: Option<ResumeAt>,
    /// The bearer token of a negotiated connection's requests, and its refresh (none
    /// without negotiate).
    pub(crate) auth: Option<Auth>,
    /// The token's lifetime, as negotiate reported it.
    pub(crate) token_lifetime: Option<Duration>,
}

/// Where a stateful connection resumes.
#[derive(Clone, Debug)]
pub(crate) struct ResumeAt {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    /// The connection's bearer token: a token the server handed out (a negotiate
    /// redirect's, a refresh answer's) is the one a resumed WebSocket carries.
    pub(crate) auth: Auth,
}

fn text(protocol: Protocol) -> bool {
    protocol.transfer_format() == TransferFormat::Text
}

/// Negotiates, opens the first transport that works and completes the handshake.
pub(crate) async fn open(config: &Arc<Config>, net: &Net) -> Result<Opened, StartError> {
    if let Some(name) = &config.invalid_header {
        return Err(StartError::Header(name.clone()));
    }
    if let Some(connector) = &config.connector {
        let duplex = connector.open().await?;
        let connection_id = duplex.connection_id.clone();
        let mut link = transport::in_memory::link(duplex);
        let leftover = handshake(&mut link, config.protocol, 1, config.handshake_timeout)
            .await
            .map_err(StartError::Handshake)?;
        return Ok(Opened {
            link,
            leftover,
            connection_id,
            resume: None,
            auth: None,
            token_lifetime: None,
        });
    }
    net.check(&config.url)?;
    let token = fresh_token(config).await;
    let mut headers = base_headers(config);
    authorize(&mut headers, token.as_deref());
    let protocol = config.protocol;
    let skip = config.skip_negotiation;
    let (url, connection_token, connection_id, offered, stateful, auth, token_lifetime) = if skip {
        let both = vec!["Text".to_owned(), "Binary".to_owned()];
        (
            transport::http_url(&config.url),
            None,
            None,
            vec![(TransportKind::WebSockets, both)],
            false,
            Auth::unnegotiated(config, token),
            None,
        )
    } else {
        let negotiated = negotiate(net, &config.url, &headers, config.stateful.is_some()).await?;
        authorize(&mut headers, negotiated.access_token.as_deref());
        let from_server = negotiated.access_token.is_some();
        let auth = Auth::negotiated(
            config,
            net,
            negotiated.token.clone(),
            negotiated.access_token.or(token),
            from_server,
        );
        (
            negotiated.url,
            negotiated.token,
            negotiated.connection_id,
            negotiated.transports,
            negotiated.stateful,
            auth,
            negotiated.token_lifetime,
        )
    };
    let mut link = open_offered(
        config,
        net,
        &offered,
        (&url, connection_token.as_deref()),
        &headers,
        &auth,
    )
    .await?;
    // Stateful reconnect runs over WebSockets only, with protocol version 2.
    let stateful = stateful && link.transport == TransportKind::WebSockets;
    let version = if stateful { 2 } else { 1 };
    let leftover = handshake(&mut link, protocol, version, config.handshake_timeout)
        .await
        .map_err(StartError::Handshake)?;

    // The official clients ping right after the handshake (not on long polling).
    if link.transport != TransportKind::LongPolling {
        let mut ping = Vec::new();
        if protocol.encode(&HubMessage::Ping, &mut ping).is_ok() {
            let _ = link
                .out
                .send(Outgoing {
                    bytes: ping.into(),
                    text: text(protocol),
                })
                .await;
        }
    }
    Ok(Opened {
        link,
        leftover,
        connection_id,
        resume: stateful.then(|| ResumeAt {
            url,
            token: connection_token,
            auth: auth.clone(),
        }),
        auth: (!skip).then_some(auth),
        token_lifetime,
    })
}

/// Opens the first of the configured transports that the server offers for the protocol's
/// transfer format and that connects (to `url` with the connection `token`).
async fn open_offered(
    config: &Config,
    net: &Net,
    offered: &[(TransportKind, Vec<String>)],
    (url, token): (&str, Option<&str>),
    headers: &HeaderMap,
    auth: &Auth,
) -> Result<Link, StartError> {
    let protocol = config.protocol;
    let format = protocol.transfer_format().name();
    let mut errors = Vec::new();
    for kind in &config.transports {
        let Some((_, formats)) = offered.iter().find(|(k, _)| k == kind) else {
            continue;
        };
        if !formats.iter().any(|f| f == format) {
            errors.push(format!(
                "{} does not support the {format} transfer format.",
                kind.name()
            ));
            continue;
        }
        match transport::connect(
            net,
            *kind,
            url,
            token,
            headers,
            protocol == Protocol::MessagePack,
            auth,
        )
        .await
        {
            Ok(link) => return Ok(link),
            // The transport's own words, not wrapped twice in the "unable to connect" text.
            Err(StartError::Transport(error)) => errors.push(format!("{}: {error}", kind.name())),
            Err(error) => errors.push(format!("{}: {error}", kind.name())),
        }
    }
    Err(StartError::Transport(if errors.is_empty() {
        "None of the transports is offered by the server.".to_owned()
    } else {
        errors.join(" ")
    }))
}

/// The largest handshake answer read: the official servers answer `{}` or a short
/// `{"error":"…"}`, so more than this without a record separator is not a handshake
/// answer (what the servers allow a handshake request, by default).
pub(crate) const MAX_ANSWER: usize = hubs_protocol::DEFAULT_MAX_MESSAGE_SIZE;

/// Takes the server's handshake answer off the front of `buffer`: `Ok(true)` once it has
/// arrived and accepted the handshake (what follows it stays in `buffer`), `Ok(false)`
/// while it is incomplete.
///
/// # Errors
///
/// [`HandshakeError::Refused`] for an answer with an error, [`HandshakeError::Malformed`]
/// for one that is not a handshake answer or is longer than [`MAX_ANSWER`].
pub(crate) fn read_answer(buffer: &mut BytesMut) -> Result<bool, HandshakeError> {
    match HandshakeResponse::decode(buffer, Some(MAX_ANSWER)) {
        Ok(Some(HandshakeResponse {
            error: Some(error), ..
        })) => Err(HandshakeError::Refused(error)),
        Ok(Some(_)) => Ok(true),
        Ok(None) => Ok(false),
        Err(error) => Err(HandshakeError::Malformed(error.to_string())),
    }
}

/// Sends the handshake request (always JSON text) and reads the answer; returns what
/// arrived after it.
pub(crate) async fn handshake(
    link: &mut Link,
    protocol: Protocol,
    version: u32,
    timeout: Duration,
) -> Result<Bytes, HandshakeError> {
    let mut request = Vec::new();
    HandshakeRequest::new(protocol.name(), version).encode(&mut request);
    let _ = link
        .out
        .send(Outgoing {
            bytes: request.into(),
            text: true,
        })
        .await;
    let mut buffer = BytesMut::new();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while !read_answer(&mut buffer)? {
        tokio::select! {
            chunk = link.incoming.recv() => match chunk {
                Some(chunk) => buffer.extend_from_slice(&chunk),
                None => return Err(HandshakeError::Closed),
            },
            () = &mut deadline => return Err(HandshakeError::TimedOut(timeout)),
        }
    }
    Ok(buffer.freeze())
}

/// Opens a new WebSocket to a stateful connection (no negotiate, no handshake).
pub(crate) async fn resume(config: &Config, net: &Net, at: &ResumeAt) -> Result<Link, StartError> {
    let mut headers = headers(config).await;
    authorize(&mut headers, at.auth.server_token().as_deref());
    transport::connect(
        net,
        TransportKind::WebSockets,
        &at.url,
        at.token.as_deref(),
        &headers,
        config.protocol == Protocol::MessagePack,
        &at.auth,
    )
    .await
}
