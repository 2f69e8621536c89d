//! Who a request is: the endpoint's authenticator, then the hub's requirement; run on
//! every request of a hub (negotiate, the WebSocket upgrade, each poll and POST).

use std::sync::Arc;

use http::{Response, StatusCode};
use hubs_core::{User, Verdict};

use crate::body::{self, Body};
use crate::service::Mounted;

/// The status and text of a connection refused for its user: too many connections.
pub(crate) fn too_many_for_user() -> Response<Body> {
    body::text(
        StatusCode::TOO_MANY_REQUESTS,
        hubs_core::wire::TOO_MANY_FOR_USER,
    )
}

/// The user a request authenticates (`None`: anonymous), or the refusal to send: `401`
/// for a refused credential or a hub that needs a user, `403` for a user the hub's
/// requirement turns away.
pub(crate) async fn identify(
    mounted: &Mounted,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Result<Option<Arc<User>>, Response<Body>> {
    let authenticator = mounted.options.authenticator();
    if authenticator.is_none() && !mounted.endpoint.has_requirement() {
        return Ok(None);
    }
    let user = match authenticator {
        None => None,
        Some(authenticator) => {
            let view = hubs_core::Request::new(uri.clone(), headers.clone());
            match authenticator.authenticate(&view).await {
                Ok(user) => user.map(Arc::new),
                Err(error) => {
                    tracing::debug!(%error, "credential refused");
                    return Err(body::text(StatusCode::UNAUTHORIZED, ""));
                }
            }
        }
    };
    match mounted.endpoint.authorize(user.clone()).await {
        Verdict::Allowed => Ok(user),
        Verdict::Unauthenticated => Err(body::text(StatusCode::UNAUTHORIZED, "")),
        Verdict::Forbidden => Err(body::text(StatusCode::FORBIDDEN, "")),
    }
}
