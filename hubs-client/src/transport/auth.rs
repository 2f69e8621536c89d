//! Authentication refresh (`@microsoft/signalr` 11): the bearer token a connection's HTTP
//! requests carry, renewed after a 401 or by `POST {hub}/refresh`, and when the next
//! refresh is due.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Net, read_body, refresh_url, request};
use crate::config::{Config, TokenProvider};
use crate::error::RefreshError;

/// The header the refresh request carries the connection token in.
const CONNECTION_TOKEN: HeaderName = HeaderName::from_static("x-signalr-connection-token");

/// The long-polling answer that asks for a refresh.
const REFRESH_REQUIRED: &str = "authentication_refresh_required";

/// The longest lifetime taken, in seconds (the official client's bound:
/// `floor(Number.MAX_SAFE_INTEGER / 1000)`).
const MAX_LIFETIME_SECS: f64 = 9_007_199_254_740.0;

/// The longest wait before a refresh (what `setTimeout` can count: 2^31 - 1 ms).
const MAX_DELAY: Duration = Duration::from_millis(2_147_483_647);

/// How long a refresh request may take (the official client's default request timeout).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(100);

/// The largest refresh answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// A token lifetime as the server wrote it (`tokenLifetimeSeconds`): a JSON number,
/// finite and positive (fractions allowed, capped as the official client does); anything
/// else (a string, `null`, zero, a negative number) is no lifetime.
pub(crate) fn lifetime(raw: Option<&RawValue>) -> Option<Duration> {
    let seconds: f64 = raw?.get().trim().parse().ok()?;
    (seconds.is_finite() && seconds > 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_LIFETIME_SECS)))
}

/// When to refresh a token that lives `lifetime`, `margin` before it expires: halfway
/// through when the lifetime is at most twice the margin, else `margin` before the end
/// (`L <= 2B ? L/2 : L - B`, as the official client), and never later than 2^31 - 1 ms.
pub(crate) fn refresh_delay(lifetime: Duration, margin: Duration) -> Duration {
    let delay = if lifetime <= margin.saturating_mul(2) {
        lifetime / 2
    } else {
        lifetime - margin
    };
    delay.min(MAX_DELAY)
}

/// Whether a 409 poll answer asks for a refresh: a JSON object whose `error` is
/// `authentication_refresh_required` (other fields and the content type do not matter).
pub(crate) fn refresh_required(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        error: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Answer<'_>>(body)
        .ok()
        .and_then(|answer| answer.error)
        .and_then(|error| serde_json::from_str::<String>(error.get()).ok())
        .is_some_and(|error| error == REFRESH_REQUIRED)
}

/// The bearer token of a connection's HTTP requests after connecting (polls, sends, the
/// DELETE), shared by its tasks, and how to refresh it. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Auth(Arc<Inner>);

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: not shown.
        f.debug_struct("Auth")
            .field("refreshable", &self.0.target.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// The application's token provider: asked again after a 401, and for each refresh.
    provider: Option<TokenProvider>,
    bearer: Mutex<Bearer>,
    /// Where to refresh (negotiated connections only).
    target: Option<Target>,
}

#[derive(Default)]
struct Bearer {
    token: Option<String>,
    /// The token came from the server (a negotiate redirect, or a refresh answer): it is
    /// not renewed through the provider after a 401.
    from_server: bool,
}

/// What a refresh request needs.
struct Target {
    net: Net,
    config: Arc<Config>,
    /// The connection token (the connection id with negotiate version 0).
    connection_token: Option<String>,
}

/// A refresh answer's fields (other fields are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshAnswer<'a> {
    #[serde(borrow)]
    access_token: Option<&'a RawValue>,
    #[serde(borrow)]
    token_lifetime_seconds: Option<&'a RawValue>,
}

impl Auth {
    /// The requests of a negotiated connection: its first `token` (`from_server` when a
    /// negotiate redirect handed it out) and what refreshes it.
    pub(crate) fn negotiated(
        config: &Arc<Config>,
        net: &Net,
        connection_token: Option<String>,
        token: Option<String>,
        from_server: bool,
    ) -> Self {
        Self(Arc::new(Inner {
            provider: config.access_token.clone(),
            bearer: Mutex::new(Bearer { token, from_server }),
            target: Some(Target {
                net: net.clone(),
                config: config.clone(),
                connection_token,
            }),
        }))
    }

    /// The requests of a connection that did not negotiate (it cannot be refreshed).
    pub(crate) fn unnegotiated(config: &Config, token: Option<String>) -> Self {
        Self(Arc::new(Inner {
            provider: config.access_token.clone(),
            bearer: Mutex::new(Bearer {
                token,
                from_server: false,
            }),
            target: None,
        }))
    }

    fn bearer(&self) -> std::sync::MutexGuard<'_, Bearer> {
        self.0.bearer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token the server handed out (a negotiate redirect's, or a refresh answer's),
    /// which a resumed WebSocket carries instead of a new one from the provider.
    pub(crate) fn server_token(&self) -> Option<String> {
        let bearer = self.bearer();
        bearer.token.clone().filter(|_| bearer.from_server)
    }

    /// Puts the current token in `headers`. Without one, a provider's earlier token is
    /// taken out, and a header the application set itself is left alone.
    fn authorize(&self, headers: &mut HeaderMap) {
        let token = self.bearer().token.clone();
        match token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            Some(value) => {
                headers.insert(header::AUTHORIZATION, value);
            }
            None if self.0.provider.is_some() => {
                headers.remove(header::AUTHORIZATION);
            }
            None => {}
        }
    }

    /// After a 401: a new token from the provider, kept for later requests. Whether the
    /// request is to be sent again (not without a provider, nor with a server's token).
    async fn renew(&self) -> bool {
        let Some(provider) = &self.0.provider else {
            return false;
        };
        if self.bearer().from_server {
            return false;
        }
        let token = provider().await;
        let mut bearer = self.bearer();
        if bearer.from_server {
            // A refresh handed out the server's token meanwhile: it stays.
            return true;
        }
        bearer.token = token;
        true
    }

    /// Sends a request (a poll, a send, the DELETE) with the current token; a 401 asks the
    /// provider for a new token and sends it once more with it (the 11.0 clients).
    pub(crate) async fn send(
        &self,
        net: &Net,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<hyper::Response<Incoming>, String> {
        let mut headers = headers.clone();
        self.authorize(&mut headers);
        let first =
            request(method.clone(), url, &headers, body.clone()).map_err(|e| e.to_string())?;
        let response = net.send(first).await?;
        if response.status() != StatusCode::UNAUTHORIZED || !self.renew().await {
            return Ok(response);
        }
        drop(response);
        self.authorize(&mut headers);
        let again = request(method, url, &headers, body).map_err(|e| e.to_string())?;
        net.send(again).await
    }

    /// `POST {hub url}/refresh{query}` with a new token from the provider and the
    /// connection token in `X-SignalR-Connection-Token`, no body, not sent again on a 401.
    /// On a 200 with JSON, the server's `accessToken` (or else the token that refreshed)
    /// becomes the token of later requests. Returns the new lifetime.
    pub(crate) async fn refresh(&self) -> Result<Option<Duration>, RefreshError> {
        let Some(target) = &self.0.target else {
            return Err(RefreshError::NotHttp);
        };
        tokio::time::timeout(REFRESH_TIMEOUT, self.refresh_at(target))
            .await
            .unwrap_or_else(|_| {
                Err(RefreshError::Transport(format!(
                    "no answer within {REFRESH_TIMEOUT:?}"
                )))
            })
    }

    async fn refresh_at(&self, target: &Target) -> Result<Option<Duration>, RefreshError> {
        let config = &target.config;
        let token = crate::credentials::fresh_token(config).await;
        let mut headers = crate::credentials::base_headers(config);
        crate::credentials::authorize(&mut headers, token.as_deref());
        if let Some(connection_token) = &target.connection_token {
            let value = HeaderValue::from_str(connection_token)
                .map_err(|_| RefreshError::Transport("invalid connection token".to_owned()))?;
            headers.insert(CONNECTION_TOKEN, value);
        }
        let url = refresh_url(&super::http_url(&config.url));
        let request = request(Method::POST, &url, &headers, Bytes::new())
            .map_err(|e| RefreshError::Transport(e.to_string()))?;
        let response = target
            .net
            .send(request)
            .await
            .map_err(RefreshError::Transport)?;
        let (status, body) = read_body(response, MAX_ANSWER)
            .await
            .map_err(RefreshError::Transport)?;
        if status != StatusCode::OK {
            return Err(RefreshError::Status {
                status: status.as_u16(),
                error: error_code(&body),
            });
        }
        // Any JSON will do (`{}` included); the fields are read from an object.
        serde_json::from_slice::<&RawValue>(&body)
            .map_err(|e| RefreshError::InvalidResponse(e.to_string()))?;
        let answer = serde_json::from_slice::<RefreshAnswer<'_>>(&body).ok();
        let server_token = answer
            .as_ref()
            .and_then(|a| a.access_token)
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .filter(|t| !t.is_empty());
        {
            let mut bearer = self.bearer();
            if let Some(server_token) = server_token {
                *bearer = Bearer {
                    token: Some(server_token),
                    from_server: true,
                };
            } else if !bearer.from_server && token.is_some() {
                bearer.token = token;
            }
        }
        Ok(lifetime(answer.and_then(|a| a.token_lifetime_seconds)))
    }
}

/// The `error` code of an error answer (`{"error":"…"}`), when it has one.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        error: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Answer>(body).ok()?.error? {
        serde_json::Value::String(code) => Some(code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_refresh_comes_margin_before_expiry_or_halfway() {
        let margin = secs(300);
        assert_eq!(refresh_delay(secs(3600), margin), secs(3300));
        // The boundary: a lifetime of twice the margin is refreshed halfway.
        assert_eq!(refresh_delay(secs(600), margin), secs(300));
        assert_eq!(refresh_delay(secs(601), margin), secs(301));
        assert_eq!(refresh_delay(secs(60), margin), secs(30));
        assert_eq!(refresh_delay(secs(10), margin), secs(5));
        assert_eq!(
            refresh_delay(Duration::from_millis(1500), margin),
            Duration::from_millis(750)
        );
        // No margin: at expiry.
        assert_eq!(refresh_delay(secs(60), Duration::ZERO), secs(60));
        assert_eq!(refresh_delay(secs(1000), secs(600)), secs(500));
        assert_eq!(refresh_delay(secs(3600), secs(600)), secs(3000));
        // Never later than what a JavaScript timer counts, whatever the margin.
        assert_eq!(refresh_delay(secs(10_000_000_000), margin), MAX_DELAY);
        assert_eq!(
            refresh_delay(secs(10_000_000_000), Duration::MAX),
            MAX_DELAY
        );
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("JSON")
    }

    #[test]
    fn only_positive_finite_numbers_are_lifetimes() {
        assert_eq!(lifetime(Some(&raw("3600"))), Some(secs(3600)));
        assert_eq!(
            lifetime(Some(&raw("0.5"))),
            Some(Duration::from_millis(500))
        );
        assert_eq!(lifetime(Some(&raw("1e3"))), Some(secs(1000)));
        assert_eq!(
            lifetime(Some(&raw("1e300"))),
            Some(Duration::from_secs_f64(MAX_LIFETIME_SECS))
        );
        for invalid in ["0", "-5", "\"3600\"", "null", "true", "{}", "[60]", "1e400"] {
            assert_eq!(lifetime(Some(&raw(invalid))), None, "{invalid}");
        }
        assert_eq!(lifetime(None), None);
    }

    #[test]
    fn only_the_refresh_code_asks_for_a_refresh() {
        assert!(refresh_required(
            br#"{"error":"authentication_refresh_required"}"#
        ));
        assert!(refresh_required(
            br#"{"error":"authentication_refresh_required","error_description":"x","n":1e400}"#
        ));
        for other in [
            &br#"{"error":"conflict"}"#[..],
            br#"{"error":null}"#,
            br#"{"error":["authentication_refresh_required"]}"#,
            br#""authentication_refresh_required""#,
            b"authentication_refresh_required",
            b"",
        ] {
            assert!(
                !refresh_required(other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn error_codes_are_read_from_json_strings_only() {
        assert_eq!(
            error_code(br#"{"error":"permission_change_rejected"}"#).as_deref(),
            Some("permission_change_rejected")
        );
        assert_eq!(error_code(br#"{"error":3}"#), None);
        assert_eq!(error_code(b"Forbidden"), None);
        assert_eq!(error_code(b""), None);
    }
}
