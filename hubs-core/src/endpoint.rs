//! Floor 7, the top: a mounted hub as transports see it ([`HubEndpoint`]), and its
//! implementation for [`HubRuntime`], whose `connect` starts the per-connection task.

use std::any::Any;
use std::sync::Arc;

use crate::base::authorization::Verdict;
use crate::base::connection_id::ConnectionId;
use crate::base::future::BoxFuture;
use crate::base::identity::User;
use crate::connection::transport::{Connected, TransportConnection};
use crate::dispatch;
use crate::hub::definition::Hub;
use crate::hub::options::HubOptions;
use crate::hub::refresh::{RefreshRefused, Refreshed};
use crate::routing::presence::Presence;
use crate::routing::recipients::{Groups, Many, Recipients};
use crate::routing::selection::Selection;
use crate::runtime::HubRuntime;

/// A mounted hub as transports see it: type-erased, so one server holds many hubs.
pub trait HubEndpoint: Send + Sync + 'static {
    /// The hub's options (protocols, limits, timeouts).
    fn options(&self) -> &HubOptions;

    /// Starts a connection.
    fn connect(self: Arc<Self>, connection: TransportConnection) -> Connected;

    /// The endpoint as `Any`, for finding the runtime of a hub type (a hub context).
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// Ends every connection of the hub: each gets a Close that allows reconnecting (to
    /// another server), and pending client results fail.
    fn shutdown(&self);

    /// Whether the endpoint reads whole transport messages (a raw connection handler
    /// sees one WebSocket message at a time) rather than a byte stream cut anywhere (the
    /// hub protocol finds its own message boundaries, so a WebSocket message of any size
    /// is read in pieces). Default `false`.
    fn whole_messages(&self) -> bool {
        false
    }

    /// Whether the hub has a requirement of its connections (then every request is
    /// checked with [`authorize`](Self::authorize)).
    fn has_requirement(&self) -> bool {
        false
    }

    /// Gives connection `id` the refreshed credential `user`, when the hub takes
    /// authentication refreshes and its policy accepts it. Default: refused, as disabled.
    fn refresh_authentication(
        self: Arc<Self>,
        id: ConnectionId,
        user: Arc<User>,
    ) -> BoxFuture<Result<Refreshed, RefreshRefused>> {
        let _ = (id, user);
        Box::pin(async { Err(RefreshRefused::Disabled) })
    }

    /// Whether connection `id`'s credential has expired, on a hub that takes
    /// authentication refreshes (long polling then answers a poll with 409).
    fn credential_expired(&self, id: &ConnectionId) -> bool {
        let _ = id;
        false
    }

    /// When connection `id`'s credential expires, on a hub that takes authentication
    /// refreshes (a long poll held then is answered at that instant, so that the client
    /// polls again, is told to refresh, and nothing reaches it meanwhile).
    fn credential_expires_at(&self, id: &ConnectionId) -> Option<std::time::SystemTime> {
        let _ = id;
        None
    }

    /// Whether `user` may connect to the hub (its `#[hub(authorize ...)]` requirement);
    /// the transports ask on every request that opens or carries a connection.
    fn authorize(
        &self,
        user: Option<Arc<crate::base::identity::User>>,
    ) -> BoxFuture<crate::base::authorization::Verdict> {
        let _ = user;
        Box::pin(async { crate::base::authorization::Verdict::Allowed })
    }

    /// The selected connections of the hub, to send to from outside it (code that reaches
    /// hubs by name, such as the REST API): through the hub's lifetime manager and
    /// outgoing filters, with confirmed sends (they return once the message is handed
    /// over for every server, so a routing failure is the caller's to see). `None` for an
    /// endpoint that is not a hub.
    fn recipients(&self, selection: Selection) -> Option<Recipients<Many>> {
        let _ = selection;
        None
    }

    /// The hub's group membership, of connections and of users. `None` for an endpoint
    /// that is not a hub.
    fn groups(&self) -> Option<Groups> {
        None
    }

    /// Who is connected to the hub, on every server; closing connections. `None` for an
    /// endpoint that is not a hub.
    fn presence(&self) -> Option<Presence> {
        None
    }
}

impl<H: Hub> HubEndpoint for HubRuntime<H> {
    fn options(&self) -> &HubOptions {
        &self.shared.options
    }

    fn refresh_authentication(
        self: Arc<Self>,
        id: ConnectionId,
        user: Arc<User>,
    ) -> BoxFuture<Result<Refreshed, RefreshRefused>> {
        Box::pin(dispatch::refresh::refresh(self, id, user))
    }

    fn credential_expired(&self, id: &ConnectionId) -> bool {
        dispatch::refresh::credential_expired(self, id)
    }

    fn credential_expires_at(&self, id: &ConnectionId) -> Option<std::time::SystemTime> {
        dispatch::refresh::credential_expires_at(self, id)
    }

    fn connect(self: Arc<Self>, connection: TransportConnection) -> Connected {
        dispatch::start::start(self, connection)
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    fn has_requirement(&self) -> bool {
        H::authorization().is_some()
    }

    fn authorize(&self, user: Option<Arc<User>>) -> BoxFuture<Verdict> {
        let Some(requirement) = H::authorization() else {
            return Box::pin(async { Verdict::Allowed });
        };
        let (policies, hub) = (
            self.shared.options.policies.clone(),
            self.shared.name.clone(),
        );
        Box::pin(async move { policies.check(&requirement, user, hub, None).await })
    }

    fn recipients(&self, selection: Selection) -> Option<Recipients<Many>> {
        let shared = &self.shared;
        Some(Recipients::new(
            (shared.lifetime.clone(), shared.outgoing.clone()),
            selection,
            shared.options.client_result_timeout,
            true,
        ))
    }

    fn groups(&self) -> Option<Groups> {
        Some(self.shared.groups())
    }

    fn presence(&self) -> Option<Presence> {
        Some(self.shared.presence())
    }
}
