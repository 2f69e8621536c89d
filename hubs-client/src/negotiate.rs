//! `POST {hub}/negotiate`, following redirects, as the official clients do.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hubs_protocol::TransportKind;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::StartError;
use crate::transport::auth;
use crate::transport::{Net, http_url, read_body, request, with_path_and_query};

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
    /// The server accepted stateful reconnect.
    pub(crate) stateful: bool,
    /// How long the bearer token lives (`tokenLifetimeSeconds`): the last valid value
    /// of the redirect hops.
    pub(crate) token_lifetime: Option<Duration>,
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
    #[serde(default)]
    use_stateful_reconnect: bool,
    #[serde(rename = "ProtocolVersion")]
    protocol_version: Option<serde::de::IgnoredAny>,
    /// Any JSON value: only a positive finite number is a lifetime.
    token_lifetime_seconds: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransportWire {
    transport: String,
    #[serde(default)]
    transfer_formats: Vec<String>,
}

/// The official text when a server turns on stateful reconnect unasked.
const UNASKED_STATEFUL: &str = "Client didn't negotiate Stateful Reconnect but the server did.";

/// The largest negotiate answer read. Answers are a few hundred bytes; a redirect's
/// access token also has to fit in a request header, which servers bound at 8 to 32 KiB.
const MAX_ANSWER: usize = 64 * 1024;

/// What one negotiate answer says.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Negotiate again at `url` (the official clients' redirect), with this bearer token.
    Redirect {
        url: String,
        access_token: Option<String>,
        token_lifetime: Option<Duration>,
    },
    /// The connection to open (`url` and `access_token` are not known here).
    Connection(Negotiated),
}

/// Reads one negotiate answer; `stateful`: whether the client asked for stateful
/// reconnect.
///
/// # Errors
///
/// [`StartError::Negotiate`] for an answer that is not negotiate JSON, comes from a
/// legacy server, carries an error, or turns on stateful reconnect unasked.
pub(crate) fn read_answer(body: &[u8], stateful: bool) -> Result<Answer, StartError> {
    let wire: NegotiateWire = serde_json::from_slice(body)
        .map_err(|e| StartError::Negotiate(format!("invalid response: {e}")))?;
    if wire.protocol_version.is_some() {
        return Err(StartError::Negotiate(
            hubs_protocol::wire::LEGACY_SERVER.to_owned(),
        ));
    }
    if let Some(error) = wire.error {
        return Err(StartError::Negotiate(error));
    }
    let token_lifetime = auth::lifetime(wire.token_lifetime_seconds.as_deref());
    if let Some(url) = wire.url {
        return Ok(Answer::Redirect {
            url,
            access_token: wire.access_token,
            token_lifetime,
        });
    }
    if wire.use_stateful_reconnect && !stateful {
        return Err(StartError::Negotiate(UNASKED_STATEFUL.to_owned()));
    }
    let version = wire.negotiate_version.unwrap_or(0);
    let token = if version >= 1 {
        wire.connection_token
    } else {
        wire.connection_id.clone()
    };
    Ok(Answer::Connection(Negotiated {
        url: String::new(),
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
        access_token: None,
        stateful: wire.use_stateful_reconnect,
        token_lifetime,
    }))
}

/// Negotiates, following redirects (at most 100, as the official clients); `stateful`
/// asks for stateful reconnect.
pub(crate) async fn negotiate(
    net: &Net,
    url: &str,
    headers: &HeaderMap,
    stateful: bool,
) -> Result<Negotiated, StartError> {
    let mut url = http_url(url);
    let mut headers = headers.clone();
    let mut access_token = None;
    let mut token_lifetime = None;
    for _ in 0..100 {
        let mut extra = vec![("negotiateVersion", "1")];
        if stateful {
            extra.push(("useStatefulReconnect", "true"));
        }
        let negotiate_url = with_path_and_query(&url, "/negotiate", &extra);
        let response = net
            .send(request(
                Method::POST,
                &negotiate_url,
                &headers,
                Bytes::new(),
            )?)
            .await
            .map_err(StartError::Negotiate)?;
        let (status, body) = read_body(response, MAX_ANSWER)
            .await
            .map_err(StartError::Negotiate)?;
        if status != StatusCode::OK {
            let reason = status.canonical_reason().unwrap_or("");
            return Err(StartError::Negotiate(format!(
                "{reason}: Status code '{}'",
                status.as_u16()
            )));
        }
        match read_answer(&body, stateful)? {
            Answer::Redirect {
                url: next,
                access_token: token,
                token_lifetime: hop_lifetime,
            } => {
                token_lifetime = hop_lifetime.or(token_lifetime);
                if let Some(token) = token {
                    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                        headers.insert(header::AUTHORIZATION, value);
                    }
                    access_token = Some(token);
                }
                url = http_url(&next);
            }
            Answer::Connection(negotiated) => {
                return Ok(Negotiated {
                    url,
                    access_token,
                    token_lifetime: negotiated.token_lifetime.or(token_lifetime),
                    ..negotiated
                });
            }
        }
    }
    Err(StartError::Negotiate(
        "Negotiate redirection limit exceeded.".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(answer: &str) -> Negotiated {
        match read_answer(answer.as_bytes(), false) {
            Ok(Answer::Connection(negotiated)) => negotiated,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_token_lifetime_is_read_when_it_is_a_positive_number() {
        let with = |lifetime: &str| {
            connection(&format!(
                r#"{{"negotiateVersion":1,"connectionId":"c","connectionToken":"t","availableTransports":[],"tokenLifetimeSeconds":{lifetime}}}"#
            ))
            .token_lifetime
        };
        assert_eq!(with("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(with("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(with("\"3600\""), None);
        assert_eq!(with("0"), None);
        assert_eq!(with("-1"), None);
        assert_eq!(with("null"), None);
        // Too large for a double: no lifetime, and negotiate still succeeds.
        assert_eq!(with("1e400"), None);
        let without = connection(r#"{"negotiateVersion":1,"connectionToken":"t"}"#);
        assert_eq!(without.token_lifetime, None);
        assert_eq!(without.token.as_deref(), Some("t"));
    }

    #[test]
    fn a_redirect_carries_its_lifetime() {
        let answer = read_answer(
            br#"{"url":"http://elsewhere/hub","accessToken":"a","tokenLifetimeSeconds":60}"#,
            false,
        );
        assert!(
            matches!(
                &answer,
                Ok(Answer::Redirect { token_lifetime: Some(l), .. }) if *l == Duration::from_secs(60)
            ),
            "{answer:?}"
        );
    }
}
