//! Calls from the server to clients: the Clients targets and group management.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::base::connection_id::ConnectionId;
use crate::base::outgoing::OutgoingFilters;
use crate::hub::context::Context;
use crate::hub::definition::Hub;
use crate::hub::shared::HubShared;
use crate::routing::lifetime::LifetimeManager;
use crate::routing::recipients::ClientFamily;
use crate::routing::recipients::Many;
use crate::routing::recipients::One;
use crate::routing::recipients::Recipients;
use crate::routing::selection::Selection;

/// The Clients targets available anywhere, including outside hub methods (`IHubClients`).
pub struct HubClients<H: Hub> {
    lifetime: Arc<dyn LifetimeManager>,
    outgoing: OutgoingFilters,
    timeout: Duration,
    confirmed: bool,
    _hub: PhantomData<fn() -> H>,
}

impl<H: Hub> Clone for HubClients<H> {
    fn clone(&self) -> Self {
        Self {
            lifetime: self.lifetime.clone(),
            outgoing: self.outgoing.clone(),
            timeout: self.timeout,
            confirmed: self.confirmed,
            _hub: PhantomData,
        }
    }
}

type Proxy<H, K> = <<H as Hub>::Client as ClientFamily>::Proxy<K>;

impl<H: Hub> HubClients<H> {
    /// The targets of the hub whose state is `shared`.
    pub(crate) fn of(shared: &HubShared) -> Self {
        Self {
            lifetime: shared.lifetime.clone(),
            outgoing: shared.outgoing.clone(),
            timeout: shared.options.client_result_timeout,
            confirmed: false,
            _hub: PhantomData,
        }
    }

    /// The same targets, whose sends return only once the message has been handed over
    /// for every server (with a backplane: once the broker accepted it), so a routing
    /// failure comes back as [`SendError::Routing`](crate::SendError::Routing). Without it, a backplane delivers to
    /// this server's connections, queues the rest and returns at once; what it then fails
    /// to publish is counted and logged.
    ///
    /// ```no_run
    /// # async fn f(cx: hubs_core::HubContext<impl hubs_core::Hub<Client = hubs_core::Untyped>>) -> Result<(), hubs_core::SendError> {
    /// cx.clients().confirmed().all().send("Notice", ("maintenance at noon",)).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn confirmed(&self) -> Self {
        Self {
            confirmed: true,
            ..self.clone()
        }
    }

    fn many(&self, selection: Selection) -> Proxy<H, Many> {
        Recipients::new(
            (self.lifetime.clone(), self.outgoing.clone()),
            selection,
            self.timeout,
            self.confirmed,
        )
        .into()
    }

    fn one(&self, selection: Selection) -> Proxy<H, One> {
        Recipients::new(
            (self.lifetime.clone(), self.outgoing.clone()),
            selection,
            self.timeout,
            self.confirmed,
        )
        .into()
    }

    /// Every connection of the hub.
    pub fn all(&self) -> Proxy<H, Many> {
        self.many(Selection::All)
    }

    /// Every connection but the given ones.
    pub fn all_except<I>(&self, excluded: I) -> Proxy<H, Many>
    where
        I: IntoIterator,
        I::Item: Into<ConnectionId>,
    {
        self.many(Selection::AllExcept(ids(excluded)))
    }

    /// One connection.
    pub fn client(&self, id: impl Into<ConnectionId>) -> Proxy<H, One> {
        self.one(Selection::Connection(id.into()))
    }

    /// These connections.
    pub fn clients<I>(&self, ids_: I) -> Proxy<H, Many>
    where
        I: IntoIterator,
        I::Item: Into<ConnectionId>,
    {
        self.many(Selection::Connections(ids(ids_)))
    }

    /// The members of a group.
    pub fn group(&self, group: impl Into<String>) -> Proxy<H, Many> {
        self.many(Selection::Group(group.into()))
    }

    /// The members of any of these groups, each connection once.
    pub fn groups<I>(&self, groups: I) -> Proxy<H, Many>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.many(Selection::Groups(
            groups.into_iter().map(Into::into).collect(),
        ))
    }

    /// The members of a group but the given connections.
    pub fn group_except<I>(&self, group: impl Into<String>, excluded: I) -> Proxy<H, Many>
    where
        I: IntoIterator,
        I::Item: Into<ConnectionId>,
    {
        self.many(Selection::GroupExcept(group.into(), ids(excluded)))
    }

    /// The connections of a user.
    pub fn user(&self, user: impl Into<String>) -> Proxy<H, Many> {
        self.many(Selection::User(user.into()))
    }

    /// The connections of any of these users.
    pub fn users<I>(&self, users: I) -> Proxy<H, Many>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.many(Selection::Users(
            users.into_iter().map(Into::into).collect(),
        ))
    }
}

fn ids<I>(ids: I) -> Vec<ConnectionId>
where
    I: IntoIterator,
    I::Item: Into<ConnectionId>,
{
    ids.into_iter().map(Into::into).collect()
}

/// The Clients targets inside a hub method: those of [`HubClients`] (reached through
/// `Deref`) plus the ones relative to the caller.
pub struct Clients<H: Hub> {
    base: HubClients<H>,
    caller: ConnectionId,
}

impl<H: Hub> Clients<H> {
    pub(crate) fn new(base: HubClients<H>, caller: ConnectionId) -> Self {
        Self { base, caller }
    }

    /// The same targets with confirmed sends (see [`HubClients::confirmed`]).
    #[must_use]
    pub fn confirmed(&self) -> Self {
        Self {
            base: self.base.confirmed(),
            caller: self.caller.clone(),
        }
    }

    /// The connection that made the call.
    pub fn caller(&self) -> Proxy<H, One> {
        self.base.one(Selection::Connection(self.caller.clone()))
    }

    /// Every connection but the caller.
    pub fn others(&self) -> Proxy<H, Many> {
        self.base
            .many(Selection::AllExcept(vec![self.caller.clone()]))
    }

    /// The members of a group but the caller.
    pub fn others_in_group(&self, group: impl Into<String>) -> Proxy<H, Many> {
        self.base.many(Selection::GroupExcept(
            group.into(),
            vec![self.caller.clone()],
        ))
    }
}

impl<H: Hub> std::ops::Deref for Clients<H> {
    type Target = HubClients<H>;

    fn deref(&self) -> &HubClients<H> {
        &self.base
    }
}

impl<H: Hub> Context<H> {
    /// The clients of the hub, including the caller-relative targets.
    pub fn clients(&self) -> Clients<H> {
        Clients::new(HubClients::of(self.shared()), self.connection_id().clone())
    }
}
