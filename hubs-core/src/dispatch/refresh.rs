//! Authentication refresh on a live connection: the transport authenticated a fresh
//! credential for a connection token; the hub's policy decides, the connection's identity
//! changes, and the hub's `on_authentication_refreshed` hook runs.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError, Weak};

use futures_util::FutureExt;

use crate::base::connection_id::ConnectionId;
use crate::base::identity::User;
use crate::hub::context::{ConnectionData, Context};
use crate::hub::definition::Hub;
use crate::hub::refresh::{RefreshRefused, Refreshed, token_lifetime_seconds};
use crate::runtime::HubRuntime;

/// Makes a new connection reachable by a refresh, when the hub takes them.
pub(crate) fn register<H: Hub>(runtime: &HubRuntime<H>, connection: &Arc<ConnectionData>) {
    if runtime.shared.options.refreshes_authentication() {
        runtime
            .refreshable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(connection.handle.id().clone(), Arc::downgrade(connection));
    }
}

fn find<H: Hub>(runtime: &HubRuntime<H>, id: &ConnectionId) -> Option<Arc<ConnectionData>> {
    runtime
        .refreshable
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(id)
        .and_then(Weak::upgrade)
        .filter(|connection| !connection.handle.is_closed())
}

/// Replaces connection `id`'s user with `user` when the hub's policy accepts it, then
/// runs the hub's hook.
pub(crate) async fn refresh<H: Hub>(
    runtime: Arc<HubRuntime<H>>,
    id: ConnectionId,
    user: Arc<User>,
) -> Result<Refreshed, RefreshRefused> {
    let Some(policy) = &runtime.shared.options.authentication_refresh else {
        return Err(RefreshRefused::Disabled);
    };
    let connection = find(&runtime, &id).ok_or(RefreshRefused::NotFound)?;
    let identity = &connection.handle.identity;
    if !policy.accepts(identity.user().as_deref(), &user) {
        tracing::debug!(connection_id = %id, "authentication refresh rejected");
        return Err(RefreshRefused::Rejected);
    }
    let lifetime_seconds = token_lifetime_seconds(&user);
    if identity.user().as_deref() == Some(&*user) {
        // The same credential again (a stateful reconnect presents the one it has).
        return Ok(Refreshed { lifetime_seconds });
    }
    identity.replace(user);
    tracing::debug!(connection_id = %id, ?lifetime_seconds, "authentication refreshed");
    let cx = Context::<H>::new(connection, runtime.shared.clone());
    if AssertUnwindSafe(runtime.hub.clone().on_authentication_refreshed(cx))
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("on_authentication_refreshed panicked");
    }
    Ok(Refreshed { lifetime_seconds })
}

/// Whether connection `id`'s credential has expired (a long poll then asks for a refresh).
pub(crate) fn credential_expired<H: Hub>(runtime: &HubRuntime<H>, id: &ConnectionId) -> bool {
    find(runtime, id).is_some_and(|connection| connection.handle.identity.expired())
}

/// When connection `id`'s credential expires.
pub(crate) fn credential_expires_at<H: Hub>(
    runtime: &HubRuntime<H>,
    id: &ConnectionId,
) -> Option<std::time::SystemTime> {
    find(runtime, id).and_then(|connection| connection.handle.identity.expires_at())
}
