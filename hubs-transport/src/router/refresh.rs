//! Authentication refresh (ASP.NET Core 11, the official 11.0 client): `POST
//! {hub}/refresh` with a fresh bearer token and the connection token, the error table of
//! the official server and the Azure SignalR Service (`{"error": code}` bodies), and the
//! long-polling answer to an expired credential.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use hubs_core::{RefreshRefused, User, Verdict};

use super::request::{Head, query_value};
use crate::body::{self, Body};
use crate::service::{HubService, Mounted};

/// The header the official 11.0 JavaScript client carries the connection token in; the
/// documented form, the `id` query parameter, is taken too.
pub(crate) const CONNECTION_TOKEN_HEADER: &str = "x-signalr-connection-token";

/// The error code of a long poll whose connection's credential has expired: the 11.0
/// client refreshes, then polls again.
pub(crate) const REFRESH_REQUIRED: &str = "authentication_refresh_required";

/// A JSON answer `{"error": code}` with `status`.
fn refused(status: StatusCode, code: &str) -> Response<Body> {
    let mut response =
        body::json(serde_json::to_vec(&serde_json::json!({ "error": code })).unwrap_or_default());
    *response.status_mut() = status;
    response
}

/// `403 {"error":"permission_change_rejected"}`: another user, or the hub's rule said no.
pub(crate) fn rejected() -> Response<Body> {
    refused(StatusCode::FORBIDDEN, "permission_change_rejected")
}

/// `409 {"error":"authentication_refresh_required"}`.
pub(crate) fn refresh_required() -> Response<Body> {
    refused(StatusCode::CONFLICT, REFRESH_REQUIRED)
}

impl HubService {
    /// `{hub}/refresh`: checks in the official order (method, opt-in, connection token,
    /// credential, connection), then lets the hub's policy decide.
    pub(super) async fn refresh(&self, hub_path: &str, head: Head<'_>) -> Response<Body> {
        let Some((index, mounted)) = self.find(hub_path) else {
            return body::text(StatusCode::NOT_FOUND, "");
        };
        if *head.method != Method::POST {
            return body::text(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        if !mounted.endpoint.options().refreshes_authentication() {
            return refused(StatusCode::NOT_FOUND, "refresh_disabled");
        }
        let token = head
            .headers
            .get(CONNECTION_TOKEN_HEADER)
            .and_then(|value| value.to_str().ok())
            .or_else(|| query_value(head.uri.query(), "id"))
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            return refused(StatusCode::BAD_REQUEST, "missing_connection_token");
        };
        let user = match authenticate(mounted, head).await {
            Ok(user) => user,
            Err(refusal) => return refusal,
        };
        let Some(connection_id) = self.inner.registry.running(token, index) else {
            return refused(StatusCode::NOT_FOUND, "connection_not_found");
        };
        match mounted
            .endpoint
            .clone()
            .refresh_authentication(connection_id, user)
            .await
        {
            Ok(refreshed) => {
                let answer = match refreshed.lifetime_seconds {
                    Some(seconds) => serde_json::json!({ "tokenLifetimeSeconds": seconds }),
                    None => serde_json::json!({}),
                };
                body::json(serde_json::to_vec(&answer).unwrap_or_default())
            }
            Err(RefreshRefused::Disabled) => refused(StatusCode::NOT_FOUND, "refresh_disabled"),
            Err(RefreshRefused::NotFound) => refused(StatusCode::NOT_FOUND, "connection_not_found"),
            Err(RefreshRefused::Rejected) => rejected(),
        }
    }
}

/// The refresh's user: the hub's authenticator, then its requirement. A refresh needs a
/// user: none, or a refused credential, is `401 invalid_token`; a user the hub turns away
/// is `403 permission_change_rejected`.
async fn authenticate(mounted: &Mounted, head: Head<'_>) -> Result<Arc<User>, Response<Body>> {
    let invalid = || refused(StatusCode::UNAUTHORIZED, "invalid_token");
    let options = &mounted.options;
    if options.checks_requests() && !options.authorizes(&head.view()) {
        return Err(invalid());
    }
    let Some(authenticator) = options.authenticator() else {
        return Err(invalid());
    };
    let user = match authenticator.authenticate(&head.view()).await {
        Ok(Some(user)) => Arc::new(user),
        Ok(None) => return Err(invalid()),
        Err(error) => {
            tracing::debug!(%error, "refresh credential refused");
            return Err(invalid());
        }
    };
    match mounted.endpoint.authorize(Some(user.clone())).await {
        Verdict::Allowed => Ok(user),
        Verdict::Unauthenticated => Err(invalid()),
        Verdict::Forbidden => Err(rejected()),
    }
}
