//! `POST {hub}/negotiate`: connection id, token and the transports on offer.

use serde::Serialize;

use hubs_core::{TransportKind, wire};

use crate::options::EndpointOptions;

/// The transports this server implements, in the order clients should try them.
pub(crate) const IMPLEMENTED: [TransportKind; 3] = [
    TransportKind::WebSockets,
    TransportKind::ServerSentEvents,
    TransportKind::LongPolling,
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    negotiate_version: u32,
    connection_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_token: Option<&'a str>,
    available_transports: Vec<Transport>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    use_stateful_reconnect: bool,
    /// The credential's remaining lifetime, on a hub that takes authentication refreshes
    /// (the 11.0 client schedules its refresh from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_lifetime_seconds: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Transport {
    transport: &'static str,
    transfer_formats: &'static [&'static str],
}

/// The negotiate version a client asked for, per the official server's rules.
pub(crate) fn requested_version(query: Option<&str>) -> Result<u32, String> {
    let value = query.and_then(|q| {
        q.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            key.eq_ignore_ascii_case("negotiateVersion")
                .then_some(value)
        })
    });
    match value {
        None => Ok(0),
        Some(value) => match value.parse::<i32>() {
            Ok(v) if v < 0 => Err(wire::negotiate_version_not_supported(&v.to_string())),
            Ok(v) => Ok(v.min(1) as u32),
            Err(_) => Err(wire::NEGOTIATE_VERSION_NOT_INTEGER.to_owned()),
        },
    }
}

/// Whether the client asked for stateful reconnect (`useStatefulReconnect=true`, the name
/// read without regard to case).
pub(crate) fn wants_stateful_reconnect(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            key.eq_ignore_ascii_case("useStatefulReconnect") && value.eq_ignore_ascii_case("true")
        })
    })
}

/// The body of a successful negotiate response; `stateful` when the server accepted the
/// client's request for stateful reconnect.
pub(crate) fn response(
    version: u32,
    connection_id: &str,
    token: &str,
    options: &EndpointOptions,
    stateful: bool,
    token_lifetime: Option<u64>,
) -> Vec<u8> {
    let available_transports = options
        .offered_transports()
        .iter()
        .filter(|t| IMPLEMENTED.contains(t))
        .map(|&t| Transport {
            transport: t.name(),
            transfer_formats: if t.supports_binary() {
                &["Text", "Binary"]
            } else {
                &["Text"]
            },
        })
        .collect();
    let response = Response {
        negotiate_version: version,
        connection_id,
        connection_token: (version >= 1).then_some(token),
        available_transports,
        use_stateful_reconnect: stateful,
        token_lifetime_seconds: token_lifetime,
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

/// `{"error":"…"}`, still with status 200, as the official server answers.
pub(crate) fn error(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": text })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(requested_version(None), Ok(0));
        assert_eq!(requested_version(Some("a=1&NEGOTIATEVERSION=1")), Ok(1));
        assert_eq!(requested_version(Some("negotiateVersion=5")), Ok(1));
        assert!(requested_version(Some("negotiateVersion=x")).is_err());
        assert!(requested_version(Some("negotiateVersion=-1")).is_err());
    }

    #[test]
    fn stateful_reconnect_is_answered_only_when_accepted() {
        assert!(wants_stateful_reconnect(Some(
            "negotiateVersion=1&useStatefulReconnect=true"
        )));
        assert!(wants_stateful_reconnect(Some("USESTATEFULRECONNECT=True")));
        assert!(!wants_stateful_reconnect(Some(
            "useStatefulReconnect=false"
        )));
        assert!(!wants_stateful_reconnect(None));
        let body = response(1, "id", "t", &EndpointOptions::default(), true, None);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .ends_with(r#""useStatefulReconnect":true}"#)
        );
    }

    #[test]
    fn v0_has_no_token() {
        let body = response(0, "id", "id", &EndpointOptions::default(), false, None);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"negotiateVersion":0,"connectionId":"id","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},{"transport":"ServerSentEvents","transferFormats":["Text"]},{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#
        );
    }

    #[test]
    fn the_token_lifetime_is_told_when_known() {
        let body = response(1, "id", "t", &EndpointOptions::default(), false, Some(10));
        assert!(
            String::from_utf8(body)
                .unwrap()
                .ends_with(r#""tokenLifetimeSeconds":10}"#)
        );
    }
}
