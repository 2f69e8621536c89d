//! Calls from the server to clients: the Clients targets and group management.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::arguments::Arguments;
use crate::connection_id::ConnectionId;
use crate::error::SendError;
use crate::hub::Hub;
use crate::lifetime::{LifetimeManager, Selection, SerializedMessage};

/// Marks a target that is exactly one connection (caller, client): client results are
/// offered only there.
#[derive(Debug, Clone, Copy)]
pub struct One;

/// Marks a target that may be any number of connections.
#[derive(Debug, Clone, Copy)]
pub struct Many;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::One {}
    impl Sealed for super::Many {}
}

/// [`One`] or [`Many`].
pub trait Cardinality: sealed::Sealed + Send + Sync + 'static {}
impl Cardinality for One {}
impl Cardinality for Many {}

/// How a hub talks to its clients: the typed proxies `#[client]` generates, or
/// [`Untyped`] (the default), whose targets are [`Recipients`] with `send(target, args)`.
pub trait ClientFamily: 'static {
    /// The proxy for a target of cardinality `K`.
    type Proxy<K: Cardinality>: From<Recipients<K>>;
}

/// Untyped calls to clients: every target is a [`Recipients`] with
/// [`send`](Recipients::send).
#[derive(Debug, Clone, Copy)]
pub struct Untyped;

impl ClientFamily for Untyped {
    type Proxy<K: Cardinality> = Recipients<K>;
}

/// A set of connections to send to, chosen through [`Clients`] or [`HubClients`].
pub struct Recipients<K> {
    lifetime: Arc<dyn LifetimeManager>,
    selection: Selection,
    _cardinality: PhantomData<fn() -> K>,
}

impl<K> Clone for Recipients<K> {
    fn clone(&self) -> Self {
        Self {
            lifetime: self.lifetime.clone(),
            selection: self.selection.clone(),
            _cardinality: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Recipients<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipients")
            .field("selection", &self.selection)
            .finish()
    }
}

impl<K: Cardinality> Recipients<K> {
    fn new(lifetime: Arc<dyn LifetimeManager>, selection: Selection) -> Self {
        Self {
            lifetime,
            selection,
            _cardinality: PhantomData,
        }
    }

    /// Which connections these are.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Calls the client method `target` with `arguments` on every selected connection,
    /// without waiting for the clients (`SendAsync`).
    ///
    /// The message is encoded once per protocol in use and the bytes are shared. It
    /// returns once the message is queued for every selected connection (a full queue is
    /// waited on, up to the send timeout, after which that connection is closed).
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] when an argument cannot be serialized; [`SendError::Routing`]
    /// when a backplane cannot route the message.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(all: hubs_core::Recipients<hubs_core::Many>) -> Result<(), hubs_core::SendError> {
    /// all.send("ReceiveMessage", ("ann", "hello")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send<A: Arguments>(&self, target: &str, arguments: A) -> Result<(), SendError> {
        let message = SerializedMessage::invocation(target, &arguments);
        self.lifetime.send(&self.selection, &message).await
    }
}

/// The Clients targets available anywhere, including outside hub methods (`IHubClients`).
pub struct HubClients<H: Hub> {
    lifetime: Arc<dyn LifetimeManager>,
    _hub: PhantomData<fn() -> H>,
}

impl<H: Hub> Clone for HubClients<H> {
    fn clone(&self) -> Self {
        Self {
            lifetime: self.lifetime.clone(),
            _hub: PhantomData,
        }
    }
}

type Proxy<H, K> = <<H as Hub>::Client as ClientFamily>::Proxy<K>;

impl<H: Hub> HubClients<H> {
    pub(crate) fn new(lifetime: Arc<dyn LifetimeManager>) -> Self {
        Self {
            lifetime,
            _hub: PhantomData,
        }
    }

    fn many(&self, selection: Selection) -> Proxy<H, Many> {
        Recipients::new(self.lifetime.clone(), selection).into()
    }

    fn one(&self, selection: Selection) -> Proxy<H, One> {
        Recipients::new(self.lifetime.clone(), selection).into()
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

/// Group membership.
pub struct Groups {
    lifetime: Arc<dyn LifetimeManager>,
}

impl Groups {
    pub(crate) fn new(lifetime: Arc<dyn LifetimeManager>) -> Self {
        Self { lifetime }
    }

    /// Adds a connection to a group. Membership ends when the connection does.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when a backplane cannot reach the connection's server.
    pub async fn add(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        self.lifetime.add_to_group(connection, group).await
    }

    /// Removes a connection from a group.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when a backplane cannot reach the connection's server.
    pub async fn remove(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        self.lifetime.remove_from_group(connection, group).await
    }
}
