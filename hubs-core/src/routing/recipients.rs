//! Sets of connections to call: the targets `Clients` hands out, the answers of client
//! results, and group membership.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::base::connection_id::ConnectionId;
use crate::base::error::SendError;
use crate::base::outgoing::OutgoingFilters;
use crate::base::outgoing::OutgoingKind;
use crate::connection::results::ClientResultError;
use crate::routing::lifetime::LifetimeManager;
use crate::routing::message::{PerProtocol, SerializedMessage};
use crate::routing::selection::Selection;
use hubs_protocol::Arguments;
use hubs_protocol::HubError;
use hubs_protocol::{Outcome, Protocol, Value};
use serde::de::DeserializeOwned;

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

/// A target of exactly one connection ([`One`]): what a client result (a `#[client]`
/// method returning `Result<T, HubError>`) requires of its proxy, so that asking a group
/// or everyone for one value is a compile error that says what to write instead.
#[diagnostic::on_unimplemented(
    message = "a client result waits for one client's answer, and this target may be many clients",
    label = "a client result needs a single-client target",
    note = "ask one client through `clients().caller()` or `clients().client(id)`",
    note = "to gather the answers of several clients, ask through `.ask()`: `clients().all().ask().method(..)` gives a stream of (connection id, result)"
)]
pub trait SingleClient: Cardinality {}
impl SingleClient for One {}

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

/// A set of connections to send to, chosen through [`Clients`](crate::Clients) or [`HubClients`](crate::HubClients).
pub struct Recipients<K> {
    lifetime: Arc<dyn LifetimeManager>,
    outgoing: OutgoingFilters,
    selection: Selection,
    timeout: Duration,
    confirmed: bool,
    _cardinality: PhantomData<fn() -> K>,
}

impl<K> Clone for Recipients<K> {
    fn clone(&self) -> Self {
        Self {
            lifetime: self.lifetime.clone(),
            outgoing: self.outgoing.clone(),
            selection: self.selection.clone(),
            timeout: self.timeout,
            confirmed: self.confirmed,
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
    pub(crate) fn new(
        (lifetime, outgoing): (Arc<dyn LifetimeManager>, OutgoingFilters),
        selection: Selection,
        timeout: Duration,
        confirmed: bool,
    ) -> Self {
        Self {
            lifetime,
            outgoing,
            selection,
            timeout,
            confirmed,
            _cardinality: PhantomData,
        }
    }

    /// The same recipients with another client-result timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Which connections these are.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Calls the client method `target` with `arguments` on every selected connection,
    /// without waiting for the clients (`SendAsync`).
    ///
    /// The message is encoded once per protocol in use and the bytes are shared. It
    /// returns once the message is queued for every selected connection, after waiting
    /// briefly (250 ms at most) for those that hold a lot and are reading, so a loop of
    /// sends runs at the speed of its receivers; a connection that stays behind is closed
    /// (or skipped) by its [`SlowConsumerPolicy`](crate::base::slow_consumer::SlowConsumerPolicy), never waited
    /// for (see [`OutboundBudget`](crate::base::slow_consumer::OutboundBudget)).
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
        tracing::debug!(target, selection = ?self.selection, "send to clients");
        let headers = self
            .outgoing
            .headers(OutgoingKind::Invocation, Some(target))
            .map_err(|dropped| SendError::Dropped(dropped.0))?;
        let message = SerializedMessage::invocation(target, &arguments, headers);
        if self.confirmed {
            self.lifetime
                .send_confirmed(&self.selection, &message)
                .await
        } else {
            self.lifetime.send(&self.selection, &message).await
        }
    }
}

impl<K: SingleClient> Recipients<K> {
    /// Calls the client method `target` and waits for the value it returns (a client
    /// result, `InvokeAsync<T>`).
    ///
    /// # Errors
    ///
    /// A [`HubError`] carrying: the client's error text as it sent it (`Client didn't
    /// provide a result.` when it has no handler); `Error trying to deserialize result to
    /// {T}. …` for a result of the wrong shape; `Connection '{id}' disconnected.` or
    /// `Connection '{id}' does not exist.`; or the timeout (the hub's
    /// `client_result_timeout`, or [`with_timeout`](Self::with_timeout)).
    pub async fn invoke<T: DeserializeOwned, A: Arguments + Send>(
        &self,
        target: &str,
        arguments: A,
    ) -> Result<T, HubError> {
        let Selection::Connection(id) = &self.selection else {
            return Err(HubError::new(
                "a client result needs exactly one connection",
            ));
        };
        let outcome = self
            .lifetime
            .invoke(id, target, &arguments, self.timeout)
            .await;
        bind_outcome(outcome)
    }
}

impl Recipients<Many> {
    /// Calls the client method `target` on every selected connection and collects their
    /// results as they come: see [`Responses`]. Each client has the timeout of these
    /// recipients ([`with_timeout`](Self::with_timeout) changes it).
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] when the arguments cannot be serialized.
    pub fn invoke_each<T: DeserializeOwned + Send + 'static, A: Arguments>(
        &self,
        target: &str,
        arguments: A,
    ) -> Result<Responses<T>, SendError> {
        let encoded = Arc::new(
            PerProtocol::try_from_fn(|protocol| arguments.to_values(protocol))
                .map_err(SendError::Encode)?,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let lifetime = self.lifetime.clone();
        let selection = self.selection.clone();
        let timeout = self.timeout;
        let target = target.to_owned();
        tokio::spawn(async move {
            let ids = lifetime.connection_ids(&selection).await;
            let mut asks: FuturesUnordered<_> = ids
                .into_iter()
                .map(|id| {
                    let (lifetime, encoded, target) = (&lifetime, &encoded, &target);
                    async move {
                        let outcome = lifetime.invoke(&id, target, &**encoded, timeout).await;
                        (id, bind_outcome::<T>(outcome))
                    }
                })
                .collect();
            while let Some(answer) = asks.next().await {
                if tx.send(answer).is_err() {
                    return;
                }
            }
        });
        Ok(Responses { rx })
    }
}

/// Binds a client's answer to `T`.
fn bind_outcome<T: DeserializeOwned>(
    outcome: Result<Outcome, ClientResultError>,
) -> Result<T, HubError> {
    let value = match outcome? {
        Outcome::Error(error) => return Err(HubError::new(error)),
        Outcome::Result(value) => value,
        // "Done, no value": bind as null, so `()` and `Option<T>` accept it.
        Outcome::Void => Value::null(Protocol::Json),
    };
    value.deserialize().map_err(|error| {
        HubError::new(hubs_protocol::wire::result_not_bound(
            std::any::type_name::<T>(),
            &error.to_string(),
        ))
    })
}

/// The answers of several clients to one call, in the order they arrive: a stream of
/// `(connection id, result)`.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn f(room: hubs_core::Recipients<hubs_core::Many>) -> Result<(), hubs_core::SendError> {
/// // The first client to answer successfully.
/// let first = room.invoke_each::<String, _>("GetMessage", ())?.first().await;
/// // Every answer, each client within the recipients' timeout.
/// let all = room.invoke_each::<String, _>("GetMessage", ())?.all().await;
/// // Whatever arrived within a deadline.
/// let quick = room.invoke_each::<String, _>("GetMessage", ())?.within(Duration::from_secs(1)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Responses<T> {
    rx: mpsc::UnboundedReceiver<(ConnectionId, Result<T, HubError>)>,
}

impl<T> Responses<T> {
    /// The next answer; `None` once every client has answered or failed.
    pub async fn next(&mut self) -> Option<(ConnectionId, Result<T, HubError>)> {
        self.rx.recv().await
    }

    /// The first successful answer, skipping failures; `None` if none succeeded.
    pub async fn first(mut self) -> Option<(ConnectionId, T)> {
        while let Some((id, result)) = self.next().await {
            if let Ok(value) = result {
                return Some((id, value));
            }
        }
        None
    }

    /// Every answer, failures included.
    pub async fn all(mut self) -> Vec<(ConnectionId, Result<T, HubError>)> {
        let mut all = Vec::new();
        while let Some(answer) = self.next().await {
            all.push(answer);
        }
        all
    }

    /// The answers that arrive within `deadline`; the rest are dropped.
    pub async fn within(mut self, deadline: Duration) -> Vec<(ConnectionId, Result<T, HubError>)> {
        let mut answers = Vec::new();
        let _ = tokio::time::timeout(deadline, async {
            while let Some(answer) = self.next().await {
                answers.push(answer);
            }
        })
        .await;
        answers
    }
}

impl<T> futures_util::Stream for Responses<T> {
    type Item = (ConnectionId, Result<T, HubError>);

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
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

    /// Adds a connection to a group. Membership ends when the connection closes.
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

    /// Puts `user` in `group`: every connection the user has now, on any server, joins
    /// it, and so does every connection the user opens while the membership lasts.
    ///
    /// The membership lasts `ttl` (`None`: a year, as the Azure SignalR Service keeps
    /// it; at most `i32::MAX` seconds, the REST API's longest, and a longer one is taken
    /// as that). With a zero `ttl` only the connections the user has now join. When a `ttl`
    /// ends (and no later `add_user` extended it), the user's connections then in the
    /// group leave it; a server that restarts meanwhile forgets that timer, and the
    /// record still ends at its time, so no later connection joins.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when the membership cannot be recorded (a lifetime manager
    /// that keeps no user groups) or a connection's server cannot be reached.
    pub async fn add_user(
        &self,
        user: &str,
        group: &str,
        ttl: Option<Duration>,
    ) -> Result<(), SendError> {
        const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
        // At most the REST API's longest ttl (an int32 of seconds, 68 years): any time
        // within it can be added to now and stored as milliseconds.
        const LONGEST: Duration = Duration::from_secs(i32::MAX as u64);
        let ttl = ttl.map(|ttl| ttl.min(LONGEST));
        let lasts = ttl.unwrap_or(YEAR);
        if !lasts.is_zero() {
            let until = std::time::SystemTime::now() + lasts;
            self.lifetime.add_user_to_group(user, group, until).await?;
        }
        for connection in self.user_connections(user).await {
            self.lifetime.add_to_group(&connection, group).await?;
        }
        if let Some(ttl) = ttl.filter(|ttl| !ttl.is_zero()) {
            let (lifetime, user, group) =
                (self.lifetime.clone(), user.to_owned(), group.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(ttl).await;
                if lifetime.user_groups(&user).await.contains(&group) {
                    return;
                }
                let groups = Groups { lifetime };
                let _ = groups.leave(&user, &group).await;
            });
        }
        Ok(())
    }

    /// Takes `user` out of `group`: the membership [`add_user`](Self::add_user) recorded
    /// ends, and every connection the user has now, on any server, leaves the group.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when the record cannot be removed or a connection's server
    /// cannot be reached.
    pub async fn remove_user(&self, user: &str, group: &str) -> Result<(), SendError> {
        self.lifetime.remove_user_from_group(user, group).await?;
        self.leave(user, group).await
    }

    /// Takes `user` out of every group: every recorded membership ends, and every
    /// connection the user has now leaves every group it is in.
    ///
    /// # Errors
    ///
    /// As [`remove_user`](Self::remove_user).
    pub async fn remove_user_from_all(&self, user: &str) -> Result<(), SendError> {
        for group in self.lifetime.user_groups(user).await {
            self.lifetime.remove_user_from_group(user, &group).await?;
        }
        for connection in self.user_connections(user).await {
            for group in self.lifetime.groups_of(&connection).await {
                self.lifetime.remove_from_group(&connection, &group).await?;
            }
        }
        Ok(())
    }

    /// Whether `user` is in `group`: a membership recorded by
    /// [`add_user`](Self::add_user) lasts, or a connection of the user is in it.
    pub async fn has_user(&self, user: &str, group: &str) -> bool {
        if self
            .lifetime
            .user_groups(user)
            .await
            .iter()
            .any(|g| g == group)
        {
            return true;
        }
        for connection in self.user_connections(user).await {
            if self
                .lifetime
                .groups_of(&connection)
                .await
                .iter()
                .any(|g| g == group)
            {
                return true;
            }
        }
        false
    }

    /// Removes the user's connections from `group`.
    async fn leave(&self, user: &str, group: &str) -> Result<(), SendError> {
        for connection in self.user_connections(user).await {
            self.lifetime.remove_from_group(&connection, group).await?;
        }
        Ok(())
    }

    async fn user_connections(&self, user: &str) -> Vec<ConnectionId> {
        self.lifetime
            .connection_ids(&Selection::User(user.to_owned()))
            .await
    }
}
