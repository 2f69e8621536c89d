//! The connection context hub methods receive.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::base::connection_id::ConnectionId;
use crate::base::error::SendError;
use crate::base::identity::Request;
use crate::base::identity::User;
use crate::base::slow_consumer::SlowConsumerPolicy;
use crate::connection::handle::ConnectionHandle;
use crate::connection::streams::Streams;
use crate::hub::shared::HubShared;
use crate::routing::presence::Presence;
use crate::routing::recipients::Groups;
use hubs_protocol::Protocol;
use hubs_protocol::TransportKind;

/// Values that live as long as one connection (`Context.Items`), keyed by type.
///
/// ```
/// # use hubs_core::Items;
/// #[derive(Clone, Debug, PartialEq)]
/// struct Nick(String);
/// let items = Items::default();
/// items.insert(Nick("ann".into()));
/// assert_eq!(items.get::<Nick>(), Some(Nick("ann".into())));
/// ```
#[derive(Debug, Default)]
pub struct Items {
    map: Mutex<http::Extensions>,
}

impl Items {
    fn lock(&self) -> std::sync::MutexGuard<'_, http::Extensions> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock().insert(value)
    }

    /// A copy of the value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().get::<T>().cloned()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().remove::<T>()
    }

    /// Runs `f` on the value of type `T` in place, inserting `T::default()` first if
    /// absent.
    pub fn with<T: Clone + Default + Send + Sync + 'static, R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let mut map = self.lock();
        f(map.get_or_insert_default::<T>())
    }
}

/// What lives as long as one connection.
#[derive(Debug)]
pub(crate) struct ConnectionData {
    pub(crate) handle: Arc<ConnectionHandle>,
    pub(crate) request: Request,
    pub(crate) transport: TransportKind,
    pub(crate) items: Items,
    pub(crate) streams: Arc<Streams>,
}

/// The calling connection, given to hub methods and hooks: its id, user, request and
/// items, and the way to reach other clients and groups. Cheap to clone.
pub struct Context<H> {
    connection: Arc<ConnectionData>,
    shared: Arc<HubShared>,
    /// The user as of the call (or hook) this context was made for: an authentication
    /// refresh replaces the connection's, and the next call sees it.
    user: Option<Arc<User>>,
    _hub: PhantomData<fn() -> H>,
}

impl<H> Clone for Context<H> {
    fn clone(&self) -> Self {
        Self {
            connection: self.connection.clone(),
            shared: self.shared.clone(),
            user: self.user.clone(),
            _hub: PhantomData,
        }
    }
}

impl<H> std::fmt::Debug for Context<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("hub", &self.shared.name)
            .field("connection_id", self.connection_id())
            .finish_non_exhaustive()
    }
}

impl<H> Context<H> {
    pub(crate) fn new(connection: Arc<ConnectionData>, shared: Arc<HubShared>) -> Self {
        Self {
            user: connection.handle.identity.user(),
            connection,
            shared,
            _hub: PhantomData,
        }
    }

    /// This context with the connection's user as of now: what each call and hook gets.
    pub(crate) fn current(&self) -> Self {
        if !self.shared.options.refreshes_authentication() {
            // Only a refresh replaces the user: without it, the snapshot is current.
            return self.clone();
        }
        Self {
            user: self.connection.handle.identity.user(),
            ..self.clone()
        }
    }

    /// The user as of this call, shared.
    pub(crate) fn user_arc(&self) -> Option<Arc<User>> {
        self.user.clone()
    }

    /// What the hub's connections share: its name, options, routing and services.
    pub(crate) fn shared(&self) -> &Arc<HubShared> {
        &self.shared
    }

    pub(crate) fn streams(&self) -> &Arc<Streams> {
        &self.connection.streams
    }

    pub(crate) fn handle(&self) -> &Arc<ConnectionHandle> {
        &self.connection.handle
    }

    /// The connection's id (what `clients().client(id)` takes).
    pub fn connection_id(&self) -> &ConnectionId {
        self.connection.handle.id()
    }

    /// The user the connection belongs to, as the hub's user-id provider found it (by
    /// default the authenticated user's id, its `sub` claim).
    pub fn user_identifier(&self) -> Option<&str> {
        self.connection.handle.user()
    }

    /// The authenticated user, with its claims and roles; `None` for an anonymous
    /// connection. With authentication refresh
    /// ([`HubOptions::authentication_refresh`](crate::HubOptions::authentication_refresh)),
    /// the user of the latest accepted refresh as of the call's start (the request that
    /// opened the connection keeps the first one).
    pub fn user(&self) -> Option<&User> {
        self.user.as_deref()
    }

    /// When the connection's credential expires, as of now (a refresh moves it).
    pub fn expires_at(&self) -> Option<std::time::SystemTime> {
        self.connection.handle.identity.expires_at()
    }

    /// The HTTP request that opened the connection.
    pub fn request(&self) -> &Request {
        &self.connection.request
    }

    /// The transport the connection uses.
    pub fn transport(&self) -> TransportKind {
        self.connection.transport
    }

    /// The connection's hub protocol.
    pub fn protocol(&self) -> Protocol {
        self.connection.handle.protocol()
    }

    /// Values that live as long as the connection.
    pub fn items(&self) -> &Items {
        &self.connection.items
    }

    /// Cancelled when the connection closes (`Context.ConnectionAborted`).
    pub fn connection_closed(&self) -> CancellationToken {
        self.connection.handle.close_handle().token().clone()
    }

    /// Overrides the hub's slow-consumer policy for this connection (for example in
    /// `on_connected`, for a client known to be on a slow link).
    pub fn set_slow_consumer_policy(&self, policy: SlowConsumerPolicy) {
        self.connection.handle.set_slow_consumer_policy(policy);
    }

    /// Closes the connection (`Context.Abort()`); the client is told not to reconnect.
    pub fn abort(&self) {
        self.connection.handle.abort();
    }

    /// Group membership, for any connection; for the caller itself, [`join`](Self::join)
    /// and [`leave`](Self::leave) are shorter.
    pub fn groups(&self) -> Groups {
        self.shared.groups()
    }

    /// Adds the calling connection to `group` (`cx.groups().add(cx.connection_id(),
    /// group)`). Membership ends when the connection closes.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when a backplane cannot record the membership; with `?` in a
    /// method returning `Result<_, HubError>`, the caller's invocation fails.
    pub async fn join(&self, group: &str) -> Result<(), SendError> {
        self.groups().add(self.connection_id(), group).await
    }

    /// Removes the calling connection from `group`.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when a backplane cannot record the change.
    pub async fn leave(&self, group: &str) -> Result<(), SendError> {
        self.groups().remove(self.connection_id(), group).await
    }

    /// Who is connected, on every server; closing any connection by id.
    pub fn presence(&self) -> Presence {
        self.shared.presence()
    }
}
