//! Filters: code around every invocation and connection hook ([`HubFilter`], ASP.NET
//! Core's `IHubFilter`), and around every message the server sends ([`OutgoingFilter`],
//! which no SignalR has).
//!
//! Filters run in order: the server's (`Server::filter`), then the hub's
//! ([`HubOptions::filter`](crate::HubOptions::filter)), then a method's declared limits,
//! then the method. Each gets the call and the rest of the chain ([`Next`]); it may look at
//! and change the arguments, answer with an error instead of calling on, map the result or
//! the error, and measure.
//!
//! ```
//! use hubs_core::{BoxFuture, DispatchError, HubFilter, HubInvocation, Next, Reply};
//!
//! /// Refuses empty messages to `SendMessage`, before the method runs.
//! struct NoEmptyMessages;
//!
//! impl HubFilter for NoEmptyMessages {
//!     fn invoke(&self, invocation: HubInvocation, next: Next) -> BoxFuture<Result<Reply, DispatchError>> {
//!         if invocation.method() == "SendMessage"
//!             && invocation.argument::<String>(1).is_ok_and(|text| text.is_empty())
//!         {
//!             return Box::pin(async { Err(DispatchError::hub("Empty messages are not sent.")) });
//!         }
//!         next.run(invocation)
//!     }
//! }
//! ```

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::base::connection_id::ConnectionId;
use crate::base::error::DispatchError;
use crate::base::future::BoxFuture;
use crate::base::identity::User;
use crate::base::stream::Reply;
use hubs_protocol::HubError;
use hubs_protocol::{Protocol, Value};

/// One invocation as filters see it: which hub and method, who called, and the
/// arguments (which a filter may change).
#[derive(Clone, Debug)]
pub struct HubInvocation {
    hub: Arc<str>,
    method: &'static str,
    index: usize,
    connection_id: ConnectionId,
    user: Option<Arc<User>>,
    user_id: Option<Arc<str>>,
    protocol: Protocol,
    pub(crate) arguments: Vec<Value>,
}

impl HubInvocation {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        hub: Arc<str>,
        (method, index): (&'static str, usize),
        connection_id: ConnectionId,
        user: Option<Arc<User>>,
        user_id: Option<Arc<str>>,
        protocol: Protocol,
        arguments: Vec<Value>,
    ) -> Self {
        Self {
            hub,
            method,
            index,
            connection_id,
            user,
            user_id,
            protocol,
            arguments,
        }
    }

    /// The hub's name.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The method's wire name (as the hub declares it, whatever the client's casing).
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The method's index in [`Hub::methods`](crate::Hub::methods).
    pub fn method_index(&self) -> usize {
        self.index
    }

    /// The calling connection.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection_id
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&User> {
        self.user.as_deref()
    }

    /// The connection's user id (the hub's user-id provider, or the user's `sub`).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The connection's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// How many arguments the client sent.
    pub fn argument_count(&self) -> usize {
        self.arguments.len()
    }

    /// Argument `index`, bound to `T`.
    ///
    /// # Errors
    ///
    /// [`DispatchError::Bind`] when it is absent or has another shape.
    pub fn argument<T: DeserializeOwned>(&self, index: usize) -> Result<T, DispatchError> {
        match self.arguments.get(index) {
            Some(value) => value.deserialize().map_err(DispatchError::bind),
            None => Err(DispatchError::Bind {
                detail: format!("the call has no argument number {index}"),
            }),
        }
    }

    /// Replaces argument `index` (the method sees the new value).
    ///
    /// # Errors
    ///
    /// [`DispatchError::Encode`] when `value` cannot be serialized, [`DispatchError::Bind`]
    /// when there is no such argument.
    pub fn set_argument<T: Serialize + ?Sized>(
        &mut self,
        index: usize,
        value: &T,
    ) -> Result<(), DispatchError> {
        let encoded = Value::serialize(self.protocol, value).map_err(DispatchError::Encode)?;
        match self.arguments.get_mut(index) {
            Some(slot) => {
                *slot = encoded;
                Ok(())
            }
            None => Err(DispatchError::Bind {
                detail: format!("the call has no argument number {index}"),
            }),
        }
    }
}

type Last = Box<dyn FnOnce(HubInvocation) -> BoxFuture<Result<Reply, DispatchError>> + Send>;

/// The rest of an invocation's filter chain, ending with the method.
pub struct Next {
    filters: Arc<[Arc<dyn HubFilter>]>,
    position: usize,
    last: Last,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &(self.filters.len() - self.position))
            .finish_non_exhaustive()
    }
}

impl Next {
    pub(crate) fn new(filters: Arc<[Arc<dyn HubFilter>]>, last: Last) -> Self {
        Self {
            filters,
            position: 0,
            last,
        }
    }

    /// Runs the rest of the chain with `invocation`.
    pub fn run(self, invocation: HubInvocation) -> BoxFuture<Result<Reply, DispatchError>> {
        match self.filters.get(self.position).cloned() {
            Some(filter) => filter.invoke(
                invocation,
                Self {
                    position: self.position + 1,
                    ..self
                },
            ),
            None => (self.last)(invocation),
        }
    }
}

/// A connection as its hooks' filters see it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub(crate) hub: Arc<str>,
    pub(crate) connection_id: ConnectionId,
    pub(crate) user: Option<Arc<User>>,
    pub(crate) user_id: Option<Arc<str>>,
}

impl ConnectionInfo {
    /// The hub's name.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The connection's id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection_id
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&User> {
        self.user.as_deref()
    }

    /// The connection's user id.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

pub(crate) type LastHook<T> = Box<dyn FnOnce() -> BoxFuture<T> + Send>;

/// The rest of a connection hook's filter chain, ending with the hook.
pub struct NextHook<T> {
    filters: Arc<[Arc<dyn HubFilter>]>,
    position: usize,
    last: LastHook<T>,
}

impl<T> std::fmt::Debug for NextHook<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextHook")
            .field("remaining", &(self.filters.len() - self.position))
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> NextHook<T> {
    pub(crate) fn new(filters: Arc<[Arc<dyn HubFilter>]>, last: LastHook<T>) -> Self {
        Self {
            filters,
            position: 0,
            last,
        }
    }

    fn advance(self) -> Result<(Arc<dyn HubFilter>, Self), LastHook<T>> {
        match self.filters.get(self.position).cloned() {
            Some(filter) => Ok((
                filter,
                Self {
                    position: self.position + 1,
                    ..self
                },
            )),
            None => Err(self.last),
        }
    }
}

impl NextHook<Result<(), HubError>> {
    /// Runs the rest of the `on_connected` chain.
    pub fn run(self, connection: ConnectionInfo) -> BoxFuture<Result<(), HubError>> {
        match self.advance() {
            Ok((filter, next)) => filter.on_connected(connection, next),
            Err(last) => last(),
        }
    }
}

impl NextHook<()> {
    /// Runs the rest of the `on_disconnected` chain.
    pub fn run(self, connection: ConnectionInfo, error: Option<HubError>) -> BoxFuture<()> {
        match self.advance() {
            Ok((filter, next)) => filter.on_disconnected(connection, error, next),
            Err(last) => last(),
        }
    }
}

/// Code around every invocation of a hub and its connection hooks (ASP.NET Core's
/// `IHubFilter`). Every method has a default that calls on, so a filter implements only
/// what it needs.
pub trait HubFilter: Send + Sync + 'static {
    /// Around an invocation: call `next.run(invocation)` to go on, or answer without it.
    fn invoke(
        &self,
        invocation: HubInvocation,
        next: Next,
    ) -> BoxFuture<Result<Reply, DispatchError>> {
        next.run(invocation)
    }

    /// Around `on_connected`: an error closes the connection, as the hook's would.
    fn on_connected(
        &self,
        connection: ConnectionInfo,
        next: NextHook<Result<(), HubError>>,
    ) -> BoxFuture<Result<(), HubError>> {
        next.run(connection)
    }

    /// Around `on_disconnected`.
    fn on_disconnected(
        &self,
        connection: ConnectionInfo,
        error: Option<HubError>,
        next: NextHook<()>,
    ) -> BoxFuture<()> {
        next.run(connection, error)
    }
}

impl<F: HubFilter + ?Sized> HubFilter for Arc<F> {
    fn invoke(
        &self,
        invocation: HubInvocation,
        next: Next,
    ) -> BoxFuture<Result<Reply, DispatchError>> {
        (**self).invoke(invocation, next)
    }

    fn on_connected(
        &self,
        connection: ConnectionInfo,
        next: NextHook<Result<(), HubError>>,
    ) -> BoxFuture<Result<(), HubError>> {
        (**self).on_connected(connection, next)
    }

    fn on_disconnected(
        &self,
        connection: ConnectionInfo,
        error: Option<HubError>,
        next: NextHook<()>,
    ) -> BoxFuture<()> {
        (**self).on_disconnected(connection, error, next)
    }
}
