//! What every request of a connection carries: the configured headers, the user agent,
//! and a bearer token from the application's provider.

use http::{HeaderMap, HeaderValue, header};

use crate::config::Config;

/// The configured headers, with a user agent when they have none. It names the 11.0
/// clients' behaviour, which this client has (a server tells them from older clients): a
/// long poll answered 409 `authentication_refresh_required` refreshes the token instead of
/// ending the connection, and a 401 on a poll, a send or the DELETE is sent again with a
/// new token.
pub(crate) fn base_headers(config: &Config) -> HeaderMap {
    let mut headers = config.headers.clone();
    if !headers.contains_key(header::USER_AGENT) {
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!(
                "Microsoft SignalR/11.0 (",
                env!("CARGO_PKG_VERSION"),
                "; Unknown OS; Rust hubs; Unknown Runtime Version)"
            )),
        );
    }
    headers
}

/// A new token from the application's provider, if it has one.
pub(crate) async fn fresh_token(config: &Config) -> Option<String> {
    match &config.access_token {
        Some(provider) => provider().await,
        None => None,
    }
}

/// Sets `Authorization: Bearer {token}` (nothing without a token, or with one HTTP does
/// not allow).
pub(crate) fn authorize(headers: &mut HeaderMap, token: Option<&str>) {
    if let Some(token) = token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
}

/// The headers of every request: the configured ones, a user agent, and a new bearer
/// token from the provider.
pub(crate) async fn headers(config: &Config) -> HeaderMap {
    let mut headers = base_headers(config);
    authorize(&mut headers, fresh_token(config).await.as_deref());
    headers
}
